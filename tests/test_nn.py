"""nn: Module bookkeeping, containers, initialisers, and float64 gradchecks of every layer and loss."""
import math

import numpy as np
import pytest

import minigrad
import nn
from minigrad import gradcheck


def f64(rng, *shape):
    return minigrad.tensor(rng.standard_normal(shape), requires_grad=True)


class Block(nn.Module):
    """A small model with a sub-module list, a shared layer and two kinds of buffer."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(10, 4, padding_idx=0)
        self.layers = nn.ModuleList([nn.Linear(4, 4), nn.Linear(4, 4)])
        self.heads = nn.ModuleDict({"a": nn.Linear(4, 2)})
        self.norm = nn.LayerNorm(4)
        self.drop = nn.Dropout(0.5)
        self.register_buffer("steps", minigrad.zeros(1, dtype=minigrad.int64))
        self.register_buffer("table", minigrad.ones(3, 4), persistent=False)

    def forward(self, ids):
        x = self.embed(ids) + self.table[: ids.shape[-1]]
        for layer in self.layers:
            x = self.drop(layer(x).relu())
        return self.heads["a"](self.norm(x))


# -- Module bookkeeping -----------------------------------------------------------------------------
def test_parameters_are_registered_with_pytorch_dotted_names():
    names = [name for name, _ in Block().named_parameters()]
    assert names == ["embed.weight", "layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias",
                     "heads.a.weight", "heads.a.bias", "norm.weight", "norm.bias"]
    model = Block()
    assert len(list(model.parameters())) == 9
    assert all(p.requires_grad and isinstance(p, nn.Parameter) for p in model.parameters())


def test_children_modules_and_submodules():
    model = Block()
    assert [type(c).__name__ for c in model.children()] == ["Embedding", "ModuleList", "ModuleDict", "LayerNorm",
                                                             "Dropout"]
    assert len(list(model.modules())) == 1 + 5 + 2 + 1
    assert model.get_submodule("layers.1") is model.layers[1]
    with pytest.raises(AttributeError, match="nope"):
        model.get_submodule("layers.nope")


def test_buffers_move_with_the_module_but_are_not_trained():
    model = Block()
    assert [name for name, _ in model.named_buffers()] == ["steps", "table"]
    assert all(p is not model.table for p in model.parameters())
    assert "steps" in model.state_dict() and "table" not in model.state_dict()  # non-persistent: not saved
    model.double()
    assert model.table.dtype == minigrad.float64 and model.layers[0].weight.dtype == minigrad.float64
    assert model.steps.dtype == minigrad.int64  # integer buffers keep their dtype
    model.to(minigrad.float32)
    assert model.table.dtype == minigrad.float32 and model.steps.dtype == minigrad.int64
    model.to("cpu")
    assert all(t.device == "cpu" for t in list(model.parameters()) + list(model.buffers()))


def test_train_eval_propagate_and_apply_visits_every_module():
    model = Block()
    assert model.eval() is model
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())
    visited = []
    model.apply(lambda m: visited.append(type(m).__name__))
    assert visited[-1] == "Block" and len(visited) == len(list(model.modules()))


def test_zero_grad():
    model = Block()
    model(minigrad.tensor([[1, 2, 0]])).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad(set_to_none=False)
    assert all(not p.grad.numpy().any() for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_shared_parameters_are_listed_once():
    a = nn.Linear(3, 3)
    model = nn.Sequential(a, nn.ReLU(), a)
    assert len(list(model.parameters())) == 2
    assert model.num_parameters() == 12
    assert list(model.state_dict()) == ["0.weight", "0.bias"]  # the module is visited once, under its first name


def test_assignment_rules():
    layer = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="Parameter"):
        layer.weight = minigrad.zeros(2, 2)
    layer.bias = None
    assert layer.bias is None and [n for n, _ in layer.named_parameters()] == ["weight"]
    layer.bias = nn.Parameter(minigrad.zeros(2))
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]
    assert nn.Linear(2, 2, bias=False).bias is None
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        layer.missing  # noqa: B018


def test_attributes_follow_every_write_to_the_registries():
    """Parameters, sub-modules and buffers are read as plain attributes (mirrored into __dict__): the mirror
    must follow writes made through the tables directly, deletions, re-assignment and copies."""
    import copy

    layer = nn.Linear(2, 3)
    swapped = nn.Parameter(minigrad.ones(3, 2))
    layer._parameters["weight"] = swapped  # as functional-call code does
    with minigrad.no_grad():
        np.testing.assert_allclose(layer(minigrad.ones(1, 2)).numpy(), 2 + layer.bias.detach().numpy()[None], rtol=1e-6)
    assert layer.weight is swapped
    del layer.bias
    assert "bias" not in layer._parameters
    with pytest.raises(AttributeError, match="no attribute 'bias'"):
        layer.bias  # noqa: B018
    layer.register_buffer("scale", minigrad.ones(3))
    layer._buffers.pop("scale")
    with pytest.raises(AttributeError):
        layer.scale  # noqa: B018
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    model.extra = nn.Linear(2, 2)
    model.extra = 5  # a plain value replaces the sub-module
    assert model.extra == 5 and "extra" not in model._modules
    for clone in (copy.deepcopy(layer), copy.copy(layer)):
        replacement = nn.Parameter(minigrad.zeros(3, 2))
        clone.weight = replacement
        assert clone.weight is replacement and clone._parameters["weight"] is replacement
        assert layer.weight is swapped and layer._parameters["weight"] is swapped
    # A deep copy runs (its tensors keep the device's one Backend), and its gradients are its own.
    deep = copy.deepcopy(model)
    x = minigrad.randn(4, 2)
    np.testing.assert_array_equal(deep(x).detach().numpy(), model(x).detach().numpy())
    deep(x).sum().backward()
    assert all(p.grad is None for p in model.parameters())
    model(x).sum().backward()
    for own, copied in zip(model.parameters(), deep.parameters()):
        assert copied is not own and copied.grad is not own.grad and copied.data is not own.data
        np.testing.assert_array_equal(copied.grad.numpy(), own.grad.numpy())


def test_repr_is_nested_with_parameter_counts():
    text = repr(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Sequential(nn.Linear(8, 2))))
    lines = text.splitlines()
    assert lines[0] == "Sequential("
    assert lines[1] == "  (0): Linear(in_features=4, out_features=8, bias=True)  # 40 parameters"
    assert lines[2] == "  (1): ReLU()"
    assert lines[3] == "  (2): Sequential("
    assert lines[4] == "    (0): Linear(in_features=8, out_features=2, bias=True)  # 18 parameters"
    assert lines[5] == "  )  # 18 parameters"
    assert lines[6] == ")  # 58 parameters"


# -- state dicts ------------------------------------------------------------------------------------
def test_state_dict_round_trip_into_a_fresh_model():
    model = Block()
    with minigrad.no_grad():
        model.steps.fill_(7)
    state = model.state_dict()
    minigrad.manual_seed(42)
    other = Block()
    result = other.load_state_dict(state)
    assert result.missing_keys == [] and result.unexpected_keys == []
    for name, tensor in other.state_dict().items():
        np.testing.assert_array_equal(tensor.numpy(), state[name].numpy(), err_msg=name)
    x = minigrad.tensor([[3, 1, 0]])
    np.testing.assert_array_equal(model.eval()(x).detach().numpy(), other.eval()(x).detach().numpy())


def test_load_state_dict_copies_in_place_and_casts():
    model = nn.Linear(2, 2)
    weight = model.weight
    array = model.weight.data
    model.load_state_dict({"weight": np.ones((2, 2)), "bias": minigrad.tensor([1.0, 2.0], dtype=minigrad.float64)})
    assert model.weight is weight and model.weight.data is array  # optimizers keep pointing at live values
    assert model.bias.dtype == minigrad.float32 and model.bias.tolist() == [1.0, 2.0]


def test_load_state_dict_lists_every_problem_in_one_message():
    model = Block()
    state = model.state_dict()
    before = {name: t.numpy().copy() for name, t in state.items()}
    broken = dict(state)
    del broken["norm.bias"], broken["layers.1.weight"]
    broken["extra.weight"] = minigrad.zeros(1)
    broken["embed.weight"] = minigrad.zeros(10, 5)
    broken["layers.0.bias"] = minigrad.full((4,), 3.0)
    with pytest.raises(RuntimeError) as info:
        model.load_state_dict(broken)
    message = str(info.value)
    for part in ("missing keys", "layers.1.weight", "norm.bias", "unexpected keys", "extra.weight",
                 "shape mismatches", "embed.weight", "(10, 5)", "(10, 4)"):
        assert part in message, part
    for name, tensor in model.state_dict().items():  # nothing was half-loaded
        np.testing.assert_array_equal(tensor.numpy(), before[name], err_msg=name)


def test_load_state_dict_not_strict_reports_but_loads():
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    state = {"0.weight": minigrad.ones(2, 2), "9.bias": minigrad.zeros(2)}
    result = model.load_state_dict(state, strict=False)
    assert result.missing_keys == ["0.bias", "1.weight", "1.bias"] and result.unexpected_keys == ["9.bias"]
    assert model[0].weight.detach().numpy().tolist() == [[1.0, 1.0], [1.0, 1.0]]
    with pytest.raises(RuntimeError, match="shape"):
        model.load_state_dict({"0.weight": minigrad.ones(3, 2)}, strict=False)


# -- containers -------------------------------------------------------------------------------------
def test_containers():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    assert len(seq) == 2 and isinstance(seq[1], nn.ReLU) and [type(m) for m in seq] == [nn.Linear, nn.ReLU]
    layers = nn.ModuleList([nn.Linear(2, 2)]).append(nn.Linear(2, 2))
    layers.extend([nn.Identity()])
    assert len(layers) == 3 and len(layers[1:]) == 2
    heads = nn.ModuleDict({"x": nn.Linear(1, 1)})
    heads["y"] = nn.Linear(1, 1)
    assert list(heads.keys()) == ["x", "y"] and "y" in heads
    assert [n for n, _ in heads.named_parameters()] == ["x.weight", "x.bias", "y.weight", "y.bias"]


# -- layers and initialisers --------------------------------------------------------------------------
def test_linear_default_init_is_pytorchs_uniform_bound():
    layer = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)
    w, b = layer.weight.detach().numpy(), layer.bias.detach().numpy()
    assert w.shape == (300, 400) and b.shape == (300,)
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    assert w.std() == pytest.approx(bound / math.sqrt(3), rel=0.02)
    minigrad.manual_seed(5)
    first = nn.Linear(3, 2).weight.detach().numpy()
    minigrad.manual_seed(5)
    np.testing.assert_array_equal(nn.Linear(3, 2).weight.detach().numpy(), first)


def test_embedding_padding_row_starts_at_zero_and_gets_no_gradient():
    embed = nn.Embedding(5, 3, padding_idx=-1)
    table = embed.weight.detach().numpy()
    assert embed.padding_idx == 4 and not table[4].any() and table[:4].all()
    embed(minigrad.tensor([[4, 1, 4], [2, 4, 1]])).sum().backward()
    grad = embed.weight.grad.numpy()
    assert not grad[4].any()
    np.testing.assert_array_equal(grad[[0, 1, 2, 3]].sum(1), [0.0, 6.0, 3.0, 0.0])
    with pytest.raises(ValueError, match="padding_idx"):
        nn.Embedding(5, 3, padding_idx=5)


def test_dropout_train_eval_and_reproducibility():
    x = minigrad.ones(200, 100)
    drop = nn.Dropout(0.3)
    out = drop(x).numpy()
    kept = out != 0
    np.testing.assert_allclose(out[kept], 1 / 0.7, rtol=1e-6)
    assert kept.mean() == pytest.approx(0.7, abs=0.01)
    minigrad.manual_seed(11)
    a = drop(x).numpy()
    minigrad.manual_seed(11)
    np.testing.assert_array_equal(drop(x).numpy(), a)
    drop.eval()
    np.testing.assert_array_equal(drop(x).numpy(), x.numpy())
    assert nn.Dropout(1.0)(x).numpy().sum() == 0
    with pytest.raises(ValueError):
        nn.Dropout(1.5)


def test_initialisers_bounds_statistics_and_seeding():
    init = nn.init
    w = minigrad.zeros(300, 200)
    init.xavier_uniform_(w)
    bound = math.sqrt(6 / 500)
    assert np.abs(w.numpy()).max() <= bound and w.numpy().std() == pytest.approx(bound / math.sqrt(3), rel=0.02)
    init.xavier_normal_(w, gain=2.0)
    assert w.numpy().std() == pytest.approx(2.0 * math.sqrt(2 / 500), rel=0.02)
    init.kaiming_uniform_(w, nonlinearity="relu")
    bound = math.sqrt(2) * math.sqrt(3 / 200)
    assert np.abs(w.numpy()).max() <= bound and w.numpy().std() == pytest.approx(bound / math.sqrt(3), rel=0.02)
    init.normal_(w, 1.0, 0.5)
    assert w.numpy().mean() == pytest.approx(1.0, abs=0.01) and w.numpy().std() == pytest.approx(0.5, rel=0.02)
    init.uniform_(w, -2.0, -1.0)
    assert w.numpy().min() >= -2.0 and w.numpy().max() < -1.0
    init.zeros_(w)
    assert not w.numpy().any()
    init.ones_(w)
    assert (w.numpy() == 1).all()
    p = nn.Parameter(minigrad.zeros(4, 4))  # initialisers work on parameters (they run under no_grad)
    minigrad.manual_seed(3)
    init.xavier_uniform_(p)
    minigrad.manual_seed(3)
    q = init.xavier_uniform_(minigrad.zeros(4, 4))
    np.testing.assert_array_equal(p.detach().numpy(), q.numpy())
    with pytest.raises(ValueError, match="2 dims"):
        init.xavier_uniform_(minigrad.zeros(3))


# -- gradchecks (float64) -------------------------------------------------------------------------------
def _substituting(module, names, call):
    """A function of (inputs..., parameters...) that runs `call` with those parameter values in the module."""
    def fn(*values):
        inputs, params = values[:len(values) - len(names)], values[len(values) - len(names):]
        for name, value in zip(names, params):
            module._parameters[name] = value
        return call(*inputs)
    return fn


@pytest.mark.parametrize("bias", [True, False])
def test_linear_gradcheck(bias, rng):
    layer = nn.Linear(3, 2, bias=bias).double()
    names = ["weight", "bias"] if bias else ["weight"]
    params = [f64(rng, *getattr(layer, n).shape) for n in names]
    assert gradcheck(_substituting(layer, names, layer), [f64(rng, 2, 4, 3)] + params)


@pytest.mark.parametrize("shape,affine", [(5, True), ((3, 4), True), (5, False)])
def test_layer_norm_gradcheck(shape, affine, rng):
    layer = nn.LayerNorm(shape, elementwise_affine=affine).double()
    names = ["weight", "bias"] if affine else []
    params = [f64(rng, *getattr(layer, n).shape) for n in names]
    x_shape = (2,) + ((shape,) if isinstance(shape, int) else shape)
    assert gradcheck(_substituting(layer, names, layer), [f64(rng, *x_shape)] + params)


def test_embedding_gradcheck(rng):
    # no padding_idx here: the padding row does change the output, yet by design it gets no gradient
    layer = nn.Embedding(6, 3).double()
    ids = minigrad.tensor([[0, 2, 5, 5], [1, 2, 3, 0]])
    assert gradcheck(_substituting(layer, ["weight"], lambda: layer(ids)), [f64(rng, 6, 3)])


def test_dropout_gradcheck_with_a_fixed_mask(rng):
    layer = nn.Dropout(0.4)

    def fn(x):
        minigrad.manual_seed(7)  # the same mask on every evaluation
        return layer(x)
    assert gradcheck(fn, [f64(rng, 4, 5)])


@pytest.mark.parametrize("make", [lambda: nn.GELU(), lambda: nn.GELU("tanh"), lambda: nn.Tanh(), lambda: nn.Sigmoid()])
def test_activation_gradcheck(make, rng):
    assert gradcheck(make(), [f64(rng, 3, 4)])


def test_relu_gradcheck_away_from_the_kink(rng):
    x = rng.standard_normal((3, 4))
    x[np.abs(x) < 0.1] = 0.5
    assert gradcheck(nn.ReLU(), [minigrad.tensor(x, requires_grad=True)])


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("shape", [(5, 4), (3, 4, 2, 2)])
def test_cross_entropy_gradcheck(smoothing, shape, rng):
    target = rng.integers(0, shape[1], size=(shape[0],) + shape[2:])
    target.flat[::3] = 1  # some ignored targets
    loss = nn.CrossEntropyLoss(ignore_index=1, label_smoothing=smoothing)
    assert gradcheck(lambda x: loss(x, minigrad.tensor(target)), [f64(rng, *shape)])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_gradcheck(reduction, rng):
    assert gradcheck(nn.MSELoss(reduction), [f64(rng, 3, 2), f64(rng, 3, 2)])


def test_small_mlp_gradcheck(rng):
    model = nn.Sequential(nn.Linear(3, 5), nn.GELU(), nn.LayerNorm(5), nn.Linear(5, 2)).double()
    names = [name for name, _ in model.named_parameters()]
    slots = [(model.get_submodule(n.rpartition(".")[0]), n.rpartition(".")[2]) for n in names]

    def fn(x, *params):
        for (module, name), value in zip(slots, params):
            module._parameters[name] = value
        return model(x)
    params = [f64(rng, *p.shape) for p in model.parameters()]
    assert gradcheck(fn, [f64(rng, 4, 3)] + params)


# -- devices ------------------------------------------------------------------------------------------
import fake_gpu  # noqa: E402


@pytest.mark.parametrize("device", [d for d in fake_gpu.device_params() if d != "cpu"])
def test_module_to_device_moves_parameters_buffers_and_grads(device):
    model = Block()
    model(minigrad.tensor([[1, 2, 0]])).sum().backward()
    assert model.to(device) is model
    for tensor in list(model.parameters()) + list(model.buffers()) + [p.grad for p in model.parameters()]:
        assert type(tensor.data) is fake_gpu.array_type(device)
    out = model.eval()(minigrad.tensor([[1, 2, 0]], device=device))
    assert type(out.data) is fake_gpu.array_type(device)
    model.to("cpu")
    assert all(p.device == "cpu" for p in model.parameters())
