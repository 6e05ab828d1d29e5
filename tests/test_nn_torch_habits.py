"""The torch.nn habits that carry over: SiLU, Tanh, Softmax, Identity, RMSNorm, L1Loss, KLDivLoss,
BCEWithLogitsLoss, ParameterList and ParameterDict take torch's arguments, register what torch registers
(so parameters(), state_dict(), load_state_dict() and to() see it) and give torch's values and gradients."""
import copy
import warnings
from collections import OrderedDict

import numpy as np
import pytest

import minigrad
import nn

torch = pytest.importorskip("torch")
from test_nn_torch import _compare  # noqa: E402  (same weights and inputs into both; outputs and gradients agree)


def _load_torch_state(ours, theirs):
    return ours.load_state_dict({name: minigrad.tensor(value.numpy()) for name, value in theirs.state_dict().items()})


# -- activations -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda m: m.SiLU(), lambda m: m.Tanh(),
                                  lambda m: m.Softmax(dim=1), lambda m: m.Softmax(-1), lambda m: m.Softmax(0),
                                  lambda m: m.Identity(), lambda m: m.Identity(54, unused="argument")],
                         ids=["silu", "tanh", "softmax_1", "softmax_-1", "softmax_0", "identity",
                              "identity_args"])
def test_activation_modules_match_torch(make, rng):
    ours, theirs = make(nn), make(torch.nn)
    assert repr(ours) == repr(theirs)
    _compare(ours, theirs, [3 * rng.standard_normal((2, 3, 4))], rng)


def test_silu_inplace_is_accepted_and_gives_a_new_tensor(rng):
    x = rng.standard_normal((3, 4))
    ours, theirs = nn.SiLU(inplace=True), torch.nn.SiLU(inplace=True)
    assert repr(ours) == repr(theirs) == "SiLU(inplace=True)"
    inputs = minigrad.tensor(x)
    np.testing.assert_allclose(ours(inputs).numpy(), theirs(torch.tensor(x)).numpy(), rtol=1e-12)
    np.testing.assert_array_equal(inputs.numpy(), x)


@pytest.mark.parametrize("shape", [(5,), (3, 5), (2, 3, 5), (2, 3, 4, 5)])
def test_softmax_without_dim_picks_torchs_legacy_dim_and_warns(shape, rng):
    x = rng.standard_normal(shape)
    with pytest.warns(UserWarning, match="implicit"):
        ours = nn.Softmax()(minigrad.tensor(x))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = torch.nn.Softmax()(torch.tensor(x))
    np.testing.assert_allclose(ours.numpy(), expected.numpy(), rtol=1e-12)


# -- RMSNorm -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,eps,affine", [(5, None, True), ((3, 5), None, True), ([3, 5], 1e-3, True),
                                              (5, 0.5, False)])
def test_rms_norm_module_matches_torch(shape, eps, affine, rng):
    ours = nn.RMSNorm(shape, eps=eps, elementwise_affine=affine).double()
    theirs = torch.nn.RMSNorm(shape, eps=eps, elementwise_affine=affine, dtype=torch.float64)
    assert repr(ours).split("  #")[0] == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for name, value in theirs.state_dict().items():  # torch's init: ones
        np.testing.assert_array_equal(ours.state_dict()[name].numpy(), value.numpy())
    if affine:  # then random weights, loaded from torch, so that they matter
        with torch.no_grad():
            theirs.weight.normal_()
        _load_torch_state(ours, theirs)
    x_shape = (2, 4) + ((shape,) if isinstance(shape, int) else tuple(shape))
    _compare(ours, theirs, [0.3 * rng.standard_normal(x_shape)], rng)


def test_rms_norm_module_follows_to_and_keeps_eps_none_for_the_dtype(rng):
    layer = nn.RMSNorm(4)
    assert layer.weight.dtype == minigrad.float32 and layer.eps is None
    x = 1e-4 * rng.standard_normal((3, 4))
    expected = torch.nn.RMSNorm(4, dtype=torch.float64)(torch.tensor(x))
    np.testing.assert_allclose(layer.double()(minigrad.tensor(x)).detach().numpy(), expected.detach().numpy(),
                               rtol=1e-12)
    assert layer.weight.dtype == minigrad.float64


# -- losses ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_l1_loss_module(reduction, rng):
    x = rng.standard_normal((3, 4))
    target = x - rng.uniform(0.2, 1, (3, 4)) * rng.choice([-1, 1], (3, 4))
    _compare(nn.L1Loss(reduction=reduction), torch.nn.L1Loss(reduction=reduction), [x, target], rng,
             grad_inputs=(0, 1))


@pytest.mark.parametrize("reduction", ["batchmean", "sum", "none", "mean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_loss_module(reduction, log_target, rng):
    log_p = np.log(rng.dirichlet(np.ones(5), size=4))
    log_q = np.log(rng.dirichlet(np.ones(5), size=4))
    target = log_q if log_target else np.exp(log_q)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns about "mean"
        _compare(nn.KLDivLoss(reduction=reduction, log_target=log_target),
                 torch.nn.KLDivLoss(reduction=reduction, log_target=log_target), [log_p, target], rng,
                 grad_inputs=(0, 1))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
def test_bce_with_logits_loss_module_keeps_weights_as_buffers_like_torch(reduction, weighted, rng):
    weight, pos_weight = (rng.uniform(0.5, 2, (4, 3)), rng.uniform(0.5, 3, 3)) if weighted else (None, None)
    wrap = lambda module, w: None if w is None else module.tensor(w)  # noqa: E731
    ours = nn.BCEWithLogitsLoss(wrap(minigrad, weight), reduction=reduction, pos_weight=wrap(minigrad, pos_weight))
    theirs = torch.nn.BCEWithLogitsLoss(wrap(torch, weight), reduction=reduction,
                                        pos_weight=wrap(torch, pos_weight))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert list(dict(ours.named_parameters())) == []
    _compare(ours, theirs, [3 * rng.standard_normal((4, 3)), rng.uniform(0, 1, (4, 3))], rng, grad_inputs=(0, 1))
    if weighted:
        ours.to(minigrad.float32)
        assert ours.weight.dtype == ours.pos_weight.dtype == minigrad.float32


def test_loss_modules_take_torchs_legacy_flags(rng):
    with pytest.warns(UserWarning, match="deprecated"):
        assert nn.L1Loss(size_average=False).reduction == torch.nn.L1Loss(size_average=False).reduction == "sum"
    with pytest.warns(UserWarning, match="deprecated"):
        assert nn.KLDivLoss(reduce=False).reduction == "none"
    with pytest.warns(UserWarning, match="deprecated"):
        assert nn.BCEWithLogitsLoss(None, True, True).reduction == "mean"


# -- ParameterList and ParameterDict ---------------------------------------------------------------------------
class _Holder:
    """A module holding a ParameterList and a ParameterDict, written once for torch.nn and once for nn."""

    @staticmethod
    def make(m, lib, rng):
        class Holder(m.Module):
            def __init__(self):
                super().__init__()
                self.scales = m.ParameterList([m.Parameter(lib.tensor(rng.standard_normal(3))),
                                               lib.tensor(rng.standard_normal(3))])  # a plain tensor is wrapped
                self.scales.append(lib.tensor(rng.standard_normal(3)))
                self.shifts = m.ParameterDict({"late": lib.tensor(rng.standard_normal(3)),
                                               "early": lib.tensor(rng.standard_normal(3))})
                self.shifts["extra"] = m.Parameter(lib.tensor(rng.standard_normal(3)))

            def forward(self, x):
                for scale in self.scales:
                    x = x * scale
                for key in self.shifts:
                    x = x + self.shifts[key]
                return x * self.scales[-1] + self.shifts["early"]
        return Holder()


def test_parameter_containers_register_like_torch_so_state_dicts_swap(rng):
    ours = _Holder.make(nn, minigrad, rng).double()
    theirs = _Holder.make(torch.nn, torch, rng).double()
    assert list(ours.state_dict()) == list(theirs.state_dict()) == [
        "scales.0", "scales.1", "scales.2", "shifts.early", "shifts.late", "shifts.extra"]  # torch sorts a dict
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in ours.parameters())
    assert ours.num_parameters() == 18
    _load_torch_state(ours, theirs)
    _compare(ours, theirs, [rng.standard_normal((2, 3))], rng)
    ours.to(minigrad.float32)
    assert all(p.dtype == minigrad.float32 for p in ours.parameters())
    assert all(p.dtype == minigrad.float32 for p in (*ours.scales, *ours.shifts.values()))


def test_parameter_list_behaves_as_torchs(rng):
    values = [rng.standard_normal(2) for _ in range(4)]
    ours = nn.ParameterList(minigrad.tensor(v) for v in values)
    theirs = torch.nn.ParameterList(torch.tensor(v) for v in values)
    assert len(ours) == len(theirs) == 4
    np.testing.assert_array_equal(ours[-1].detach().numpy(), theirs[-1].detach().numpy())
    assert isinstance(ours[1:3], nn.ParameterList) and [list(p.shape) for p in ours[1:3]] == [[2], [2]]
    assert ours[1:3][0] is ours[1]  # slicing shares the parameters
    ours[0] = minigrad.zeros(5)
    theirs[0] = torch.zeros(5)
    assert isinstance(ours[0], nn.Parameter) and ours[0].shape == (5,) and ours.state_dict()["0"].shape == (5,)
    ours += [minigrad.ones(1)]
    ours.extend([minigrad.ones(1)]).append("not a tensor")
    assert len(ours) == 7 and ours[6] == "not a tensor" and len(list(ours.parameters())) == 6
    assert repr(ours).split("\n")[7] == "  (6): Object of type: str"
    with pytest.raises(IndexError, match="ParameterList: index 7 is out of range for a list of 7"):
        ours[7]
    with pytest.raises(TypeError, match="ParameterList.extend takes an iterable"):
        ours.extend(minigrad.zeros(3))
    with pytest.raises(TypeError, match="cannot assign a int to parameter '1'"):
        ours[1] = 3


def test_parameter_dict_behaves_as_torchs(rng):
    def make(m, lib):
        return m.ParameterDict(OrderedDict([("b", lib.zeros(2)), ("a", lib.ones(3))]))

    ours, theirs = make(nn, minigrad), make(torch.nn, torch)
    assert list(ours) == list(theirs) == ["b", "a"]  # an OrderedDict keeps its order
    ours.update({"d": minigrad.zeros(1), "c": minigrad.zeros(1)})
    theirs.update({"d": torch.zeros(1), "c": torch.zeros(1)})
    ours.update([("z", minigrad.zeros(1)), ("y", 4)])
    theirs.update([("z", torch.zeros(1)), ("y", 4)])
    assert list(ours.keys()) == list(theirs.keys()) == ["b", "a", "c", "d", "z", "y"]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert ours["y"] == 4 and "y" in ours and "q" not in ours and ours.get("q", 7) == 7
    assert ours.setdefault("e", minigrad.zeros(2)).shape == (2,) and isinstance(ours["e"], nn.Parameter)
    popped = ours.pop("a")
    assert popped.shape == (3,) and "a" not in ours and "a" not in ours.state_dict()
    assert ours.popitem()[0] == "e"
    del ours["b"]
    assert list(ours) == ["c", "d", "z", "y"] and list(reversed(ours)) == ["y", "z", "d", "c"]
    merged = ours | {"b": minigrad.zeros(1)}
    assert list(merged) == ["c", "d", "z", "y", "b"] and merged["c"] is ours["c"]
    copied = ours.copy()
    assert list(copied) == list(ours) and copied["d"] is ours["d"]
    assert list(ours.fromkeys(["u", "v"], None)) == ["u", "v"]
    ours.clear()
    assert len(ours) == 0 and list(ours.parameters()) == []
    deep = copy.deepcopy(make(nn, minigrad))
    assert list(deep.state_dict()) == ["b", "a"]


def test_parameter_dict_refuses_keys_that_would_hide_its_attributes():
    params = nn.ParameterDict()
    for key in ("keys", "update", "training", "_keys", "forward"):
        with pytest.raises(KeyError, match=f"ParameterDict: key '{key}' would hide"):
            params[key] = minigrad.zeros(1)
    with pytest.raises(TypeError, match="ParameterDict: keys must be strings, got int"):
        params[3] = minigrad.zeros(1)
    with pytest.raises(ValueError, match=r"element #0 .* is not a \(key, value\) pair"):
        params.update([("a", 1, 2)])


def test_register_parameter_none_keeps_an_empty_slot_like_torch():
    ours, theirs = nn.Module(), torch.nn.Module()
    ours.register_parameter("bias", None)
    theirs.register_parameter("bias", None)
    assert ours.bias is None and "bias" in ours._parameters and "bias" in theirs._parameters
    assert list(ours.state_dict()) == list(theirs.state_dict()) == []
    with pytest.raises(TypeError, match="wrap it in nn.Parameter"):
        ours.bias = minigrad.zeros(2)
    ours.bias = nn.Parameter(minigrad.zeros(2))
    assert list(ours.state_dict()) == ["bias"]
