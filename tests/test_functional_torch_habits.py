"""The torch.nn.functional habits that carry over: silu, softplus, normalize, rms_norm, pad, one_hot, kl_div,
binary_cross_entropy_with_logits and l1_loss take torch's arguments and give torch's values and gradients.

Each case below is ONE call written against a module `f`, run once with f = minigrad.functional and once with
f = torch.nn.functional on the same float64 inputs: the same line of code must work in both. Every case is
also gradchecked and gradgradchecked in float64.
"""
import contextlib
import math
import warnings

import numpy as np
import pytest

import fake_gpu
import minigrad
import minigrad.functional as F

pytestmark = pytest.mark.filterwarnings("ignore:reduction. .mean. divides:UserWarning")  # torch's, for kl_div
RNG = np.random.default_rng(14)


def normal(*shape, scale=1.0):
    return scale * RNG.standard_normal(shape)


def uniform(low, high, *shape):
    return RNG.uniform(low, high, shape)


def away_from_zero(*shape):
    """|x| >= 0.2: no kink of abs within a finite difference."""
    return RNG.uniform(0.2, 1.5, shape) * RNG.choice([-1.0, 1.0], shape)


def l1_pair(*shape):
    """input and target whose difference keeps away from |d|'s kink at 0."""
    x = RNG.standard_normal(shape)
    return [x, x - away_from_zero(*shape)]


def log_probs(*shape):
    x = RNG.standard_normal(shape)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def probs(*shape):
    return np.exp(log_probs(*shape))


# (id, call(f, *inputs), inputs): every input is differentiated (torch's binary_cross_entropy_with_logits only
# differentiates its input and target: the gradients of weight and pos_weight are gradchecked)
CASES = [
    ("silu", lambda f, x: f.silu(x), [normal(3, 4, scale=3)]),
    ("softplus", lambda f, x: f.softplus(x), [normal(3, 4, scale=3)]),
    ("softplus_past_threshold", lambda f, x: f.softplus(x), [normal(4, 5, scale=15)]),
    ("softplus_beta_threshold", lambda f, x: f.softplus(x, beta=0.5, threshold=3), [normal(4, 5, scale=5)]),
    ("softplus_negative_beta", lambda f, x: f.softplus(x, -2.0), [normal(3, 4, scale=3)]),
    ("normalize", lambda f, x: f.normalize(x), [normal(2, 3, 4)]),
    ("normalize_p1_negative_dim", lambda f, x: f.normalize(x, 1, -1), [away_from_zero(2, 3, 4)]),
    ("normalize_p3_dims", lambda f, x: f.normalize(x, 3.0, (0, -1)), [normal(2, 3, 4)]),
    ("normalize_inf", lambda f, x: f.normalize(x, math.inf, 0), [normal(3, 4)]),
    ("normalize_minus_inf", lambda f, x: f.normalize(x, -math.inf, 1), [away_from_zero(3, 4)]),
    ("normalize_p0", lambda f, x: f.normalize(x, 0, 1), [normal(3, 4)]),
    ("normalize_large_eps", lambda f, x: f.normalize(x, eps=2.0), [normal(5, 3)]),
    ("rms_norm", lambda f, x: f.rms_norm(x, (4,)), [normal(2, 3, 4, scale=3)]),
    ("rms_norm_weight_two_dims", lambda f, x, w: f.rms_norm(x, [3, 4], w), [normal(2, 3, 4), normal(3, 4)]),
    ("rms_norm_eps", lambda f, x, w: f.rms_norm(x, [4], w, eps=0.1), [normal(5, 4, scale=0.3), normal(4)]),
    ("pad_last_dim", lambda f, x: f.pad(x, (1, 2)), [normal(2, 3)]),
    ("pad_three_dims_value", lambda f, x: f.pad(x, (0, 2, 1, 1, 3, 0), value=-0.5), [normal(2, 3, 4)]),
    ("pad_crop_and_pad", lambda f, x: f.pad(x, [-1, 2, 1, -2]), [normal(2, 4, 3)]),
    ("pad_crop_to_empty", lambda f, x: f.pad(x, (-2, -1)), [normal(2, 3)]),
    ("pad_nothing", lambda f, x: f.pad(x, ()), [normal(2, 3)]),
    ("kl_div_mean", lambda f, x, t: f.kl_div(x, t), [log_probs(4, 5), probs(4, 5)]),
    ("kl_div_batchmean", lambda f, x, t: f.kl_div(x, t, reduction="batchmean"), [log_probs(4, 5), probs(4, 5)]),
    ("kl_div_sum_3d", lambda f, x, t: f.kl_div(x, t, reduction="sum"), [log_probs(2, 3, 5), probs(2, 3, 5)]),
    ("kl_div_none_broadcast", lambda f, x, t: f.kl_div(x, t, reduction="none"), [log_probs(4, 5), probs(1, 5)]),
    ("kl_div_log_target", lambda f, x, t: f.kl_div(x, t, reduction="batchmean", log_target=True),
     [log_probs(4, 5), log_probs(4, 5)]),
    ("kl_div_0d_batchmean", lambda f, x, t: f.kl_div(x, t, reduction="batchmean"),
     [np.array(-0.7), np.array(0.4)]),
    ("bce_logits", lambda f, x, t: f.binary_cross_entropy_with_logits(x, t),
     [normal(4, 3, scale=3), uniform(0, 1, 4, 3)]),
    ("bce_logits_weight_pos_weight_sum",
     lambda f, x, t, w, p: f.binary_cross_entropy_with_logits(x, t, w, reduction="sum", pos_weight=p),
     [normal(2, 4, 3, scale=3), uniform(0, 1, 2, 4, 3), uniform(0.5, 2, 4, 1), uniform(0.5, 3, 3)]),
    ("bce_logits_none_pos_weight", lambda f, x, t, p: f.binary_cross_entropy_with_logits(x, t, reduction="none",
                                                                                        pos_weight=p),
     [normal(5, 3, scale=3), uniform(0, 1, 5, 3), uniform(0.5, 3, 3)]),
    ("l1_loss", lambda f, x, t: f.l1_loss(x, t), l1_pair(3, 4)),
    ("l1_loss_sum", lambda f, x, t: f.l1_loss(x, t, reduction="sum"), l1_pair(2, 3, 4)),
    ("l1_loss_none", lambda f, x, t: f.l1_loss(x, t, reduction="none"), l1_pair(3, 4)),
    ("l1_loss_weight_mean", lambda f, x, t, w: f.l1_loss(x, t, weight=w), l1_pair(3, 4) + [uniform(0.5, 2, 3, 4)]),
    ("l1_loss_weight_none", lambda f, x, t, w: f.l1_loss(x, t, reduction="none", weight=w),
     l1_pair(3, 4) + [uniform(0.5, 2, 3, 4)]),
]
IDS = [case[0] for case in CASES]


def _ours(arrays):
    return [minigrad.tensor(a, dtype=minigrad.float64, requires_grad=True) for a in arrays]


@pytest.mark.parametrize("name,call,arrays", CASES, ids=IDS)
def test_matches_torch_in_value_and_gradient(name, call, arrays):
    torch = pytest.importorskip("torch")
    ours = _ours(arrays)
    torch_differentiates = 2 if name.startswith("bce") else len(arrays)
    theirs = [torch.tensor(a, dtype=torch.float64, requires_grad=i < torch_differentiates)
              for i, a in enumerate(arrays)]
    out, expected = call(F, *ours), call(torch.nn.functional, *theirs)
    assert out.shape == tuple(expected.shape) and out.dtype == minigrad.float64
    np.testing.assert_allclose(out.detach().numpy(), expected.detach().numpy(), rtol=1e-10, atol=1e-12)
    upstream = RNG.standard_normal(tuple(expected.shape))
    (out * minigrad.tensor(upstream)).sum().backward()
    (expected * torch.tensor(upstream)).sum().backward()
    for i, (a, b) in enumerate(zip(ours[:torch_differentiates], theirs)):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=f"input {i}")


@pytest.mark.parametrize("name,call,arrays", CASES, ids=IDS)
def test_exact_first_and_second_derivatives(name, call, arrays):
    inputs = _ours(arrays)
    assert minigrad.gradcheck(lambda *xs: call(F, *xs), inputs)
    assert minigrad.gradgradcheck(lambda *xs: call(F, *xs), inputs)


ACCELERATORS = [d for d in fake_gpu.device_params() if d != "cpu"]


def no_host_traffic(device):
    return fake_gpu.no_host_traffic() if device.startswith("fakegpu") else contextlib.nullcontext()


@pytest.mark.parametrize("device", ACCELERATORS)
@pytest.mark.parametrize("name,call,arrays", CASES, ids=IDS)
def test_runs_on_a_gpu_without_host_traffic(name, call, arrays, device):
    """The fake GPU (tests/fake_gpu.py) follows CuPy's rules and raises on any download or sync."""
    on_cpu = _ours(arrays)
    on_device = [minigrad.tensor(a, dtype=minigrad.float64, device=device, requires_grad=True) for a in arrays]
    with no_host_traffic(device):
        out = call(F, *on_device)
        out.sum().backward()
    expected = call(F, *on_cpu)
    expected.sum().backward()
    assert out.device == on_device[0].device
    np.testing.assert_allclose(out.detach().numpy(), expected.detach().numpy(), rtol=1e-12, atol=1e-14)
    for a, b in zip(on_device, on_cpu):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_one_hot_on_a_gpu_waits_only_to_infer_num_classes():
    ids = minigrad.tensor([[1, 2], [0, 2]], device="fakegpu")
    with fake_gpu.no_host_traffic():
        given = F.one_hot(ids, 3)
    fake_gpu.stats.clear()
    inferred = F.one_hot(ids)
    assert fake_gpu.stats["syncs"] + fake_gpu.stats["downloads"] == 1  # the largest id, read as torch reads it
    np.testing.assert_array_equal(given.numpy(), inferred.numpy())


# -- softplus and binary_cross_entropy_with_logits at the extremes ------------------------------------------
EXTREMES = np.array([-800.0, -100.0, -40.0, -20.0, -1e-3, 0.0, 1e-3, 5.0, 19.9, 20.1, 40.0, 100.0, 800.0])


def test_softplus_is_exact_and_finite_at_extremes_like_torch():
    torch = pytest.importorskip("torch")
    x = minigrad.tensor(EXTREMES, requires_grad=True)
    t = torch.tensor(EXTREMES, requires_grad=True)
    out, expected = F.softplus(x), torch.nn.functional.softplus(t)
    np.testing.assert_allclose(out.detach().numpy(), expected.detach().numpy(), rtol=1e-15, atol=0)
    out.sum().backward()
    expected.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-15, atol=0)
    assert x.grad.numpy()[EXTREMES == 0] == 0.5  # sigmoid(0), not a subgradient of relu or abs


def test_softplus_with_a_high_threshold_does_not_overflow():
    """torch computes log1p(exp(x)) below the threshold, which is inf at x = 800; the value is 800."""
    x = minigrad.tensor(EXTREMES, requires_grad=True)
    out = F.softplus(x, threshold=1e4)
    exact = np.maximum(EXTREMES, 0) + np.log1p(np.exp(-np.abs(EXTREMES)))
    np.testing.assert_allclose(out.detach().numpy(), exact, rtol=1e-15, atol=0)
    out.sum().backward()
    e = np.exp(-np.abs(EXTREMES))
    sigmoid = np.where(EXTREMES >= 0, 1 / (1 + e), e / (1 + e))
    np.testing.assert_allclose(x.grad.numpy(), sigmoid, rtol=1e-15, atol=0)


@pytest.mark.parametrize("with_pos_weight", [False, True])
def test_bce_with_logits_is_stable_at_extreme_logits_like_torch(with_pos_weight):
    torch = pytest.importorskip("torch")
    target = RNG.uniform(0, 1, EXTREMES.shape)
    target[:3] = [0.0, 1.0, 1.0]
    pos_weight = RNG.uniform(0.5, 3, EXTREMES.shape) if with_pos_weight else None
    x = minigrad.tensor(EXTREMES, requires_grad=True)
    t = torch.tensor(EXTREMES, requires_grad=True)
    out = F.binary_cross_entropy_with_logits(x, minigrad.tensor(target), reduction="none",
                                             pos_weight=None if pos_weight is None else minigrad.tensor(pos_weight))
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        t, torch.tensor(target), reduction="none", pos_weight=None if pos_weight is None else torch.tensor(pos_weight))
    assert np.isfinite(out.detach().numpy()).all()
    np.testing.assert_allclose(out.detach().numpy(), expected.detach().numpy(), rtol=1e-13, atol=0)
    out.sum().backward()
    expected.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-13, atol=1e-300)


def test_bce_with_logits_gradient_at_zero_is_sigmoid_minus_target():
    x = minigrad.tensor(np.zeros(3), requires_grad=True)
    target = minigrad.tensor([0.0, 0.25, 1.0], dtype=minigrad.float64)
    F.binary_cross_entropy_with_logits(x, target, reduction="sum").backward()
    np.testing.assert_array_equal(x.grad.numpy(), 0.5 - target.numpy())


# -- normalize and rms_norm ---------------------------------------------------------------------------------
def test_normalize_of_a_zero_vector_is_zero_with_torch_gradient():
    torch = pytest.importorskip("torch")
    data = RNG.standard_normal((3, 4))
    data[1] = 0.0
    upstream = RNG.standard_normal((3, 4))
    for p in (2.0, 1.0, 3.0, math.inf):
        x, t = minigrad.tensor(data, requires_grad=True), torch.tensor(data, requires_grad=True)
        out, expected = F.normalize(x, p), torch.nn.functional.normalize(t, p)
        np.testing.assert_allclose(out.detach().numpy(), expected.detach().numpy(), rtol=1e-12, atol=0)
        (out * minigrad.tensor(upstream)).sum().backward()
        (expected * torch.tensor(upstream)).sum().backward()
        assert np.isfinite(x.grad.numpy()).all()
        np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-12, atol=0, err_msg=f"p={p}")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_rms_norm_eps_none_is_the_dtype_machine_epsilon_as_torch(dtype):
    torch = pytest.importorskip("torch")
    data = (1e-4 * RNG.standard_normal((3, 5))).astype(dtype)  # mean(x**2) ~ 1e-8: float32's eps matters
    ours = F.rms_norm(minigrad.tensor(data), (5,))
    expected = torch.nn.functional.rms_norm(torch.tensor(data), (5,))
    assert ours.dtype == dtype
    np.testing.assert_allclose(ours.numpy(), expected.numpy(), rtol=1e-6 if dtype == "float32" else 1e-12)
    eps = np.finfo(dtype).eps
    by_hand = data / np.sqrt((data.astype(np.float64) ** 2).mean(-1, keepdims=True) + eps)
    np.testing.assert_allclose(ours.numpy(), by_hand, rtol=1e-5 if dtype == "float32" else 1e-12)


# -- pad and one_hot ------------------------------------------------------------------------------------------
def test_pad_keeps_bool_and_integer_dtypes_like_torch():
    torch = pytest.importorskip("torch")
    mask = np.array([[True, False], [False, True]])
    assert F.pad(minigrad.tensor(mask), (1, 1)).tolist() == torch.nn.functional.pad(torch.tensor(mask),
                                                                                   (1, 1)).tolist()
    ids = np.array([1, 2])
    ours = F.pad(minigrad.tensor(ids), (2, 1), value=7)
    assert ours.dtype == minigrad.int64 and ours.tolist() == torch.nn.functional.pad(torch.tensor(ids), (2, 1),
                                                                                      value=7).tolist()


@pytest.mark.parametrize("ids,num_classes", [([0, 2, 1], -1), ([[0, 3], [1, 1]], 5), (2, -1), (np.zeros((0, 2),
                                                                                                   np.int64), 3)])
def test_one_hot_matches_torch(ids, num_classes):
    torch = pytest.importorskip("torch")
    ours = F.one_hot(minigrad.tensor(np.asarray(ids, dtype=np.int64)), num_classes)
    expected = torch.nn.functional.one_hot(torch.tensor(np.asarray(ids, dtype=np.int64)), num_classes)
    assert ours.dtype == minigrad.int64 and ours.shape == tuple(expected.shape)
    np.testing.assert_array_equal(ours.numpy(), expected.numpy())


# -- kl_div details, and torch's deprecated size_average / reduce --------------------------------------------
def test_kl_div_target_zero_adds_nothing_and_keeps_the_input_gradient_like_torch():
    torch = pytest.importorskip("torch")
    x, t = log_probs(3, 4), probs(3, 4)
    t[0, 1] = t[2, 3] = 0.0
    ours, theirs = minigrad.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out = F.kl_div(ours, minigrad.tensor(t), reduction="none")
    expected = torch.nn.functional.kl_div(theirs, torch.tensor(t), reduction="none")
    assert out.detach().numpy()[0, 1] == 0.0
    np.testing.assert_allclose(out.detach().numpy(), expected.detach().numpy(), rtol=1e-12, atol=0)
    out.sum().backward()
    expected.sum().backward()
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-12, atol=0)


LEGACY = [(None, False), (False, None), (True, True), (False, True), (True, False)]


@pytest.mark.parametrize("size_average,reduce", LEGACY)
@pytest.mark.parametrize("loss", ["l1_loss", "kl_div", "binary_cross_entropy_with_logits"])
def test_legacy_size_average_and_reduce_pick_the_reduction_as_in_torch(loss, size_average, reduce):
    torch = pytest.importorskip("torch")
    x, t = log_probs(3, 4), probs(3, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = getattr(F, loss)(minigrad.tensor(x), minigrad.tensor(t), size_average=size_average, reduce=reduce)
        expected = getattr(torch.nn.functional, loss)(torch.tensor(x), torch.tensor(t), size_average=size_average,
                                                      reduce=reduce)
    with pytest.warns(UserWarning, match="deprecated"):
        getattr(F, loss)(minigrad.tensor(x), minigrad.tensor(t), size_average=size_average, reduce=reduce)
    np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=1e-12, atol=0)


# -- errors name the function, the shapes and what is allowed --------------------------------------------------
def _t(*shape, dtype=minigrad.float64):
    return minigrad.zeros(*shape, dtype=dtype)


ERRORS = [
    (lambda: F.pad(_t(2, 3), (1,)), ValueError, r"pad: padding \(1,\) has odd length 1"),
    (lambda: F.pad(_t(2, 3), (1, 1, 1, 1, 1, 1)), ValueError, r"pad: .*3 pairs for an input of shape \(2, 3\)"),
    (lambda: F.pad(_t(2, 3), (-2, -2)), ValueError, r"pad: padding \(-2, -2\) of dim 1 crops more than its size 3"),
    (lambda: F.pad(_t(2, 3), (1, 1), mode="reflect"), NotImplementedError, r"pad: mode 'reflect'.*only 'constant'"),
    (lambda: F.one_hot(_t(3)), TypeError, "one_hot: the class ids must be an integer tensor, got float64"),
    (lambda: F.one_hot(_t(0, dtype=minigrad.int64)), ValueError, r"one_hot: cannot infer num_classes .*\(0,\)"),
    (lambda: F.one_hot(minigrad.tensor([0, 3]), 3), IndexError, r"one_hot: class id 3 is out of bounds"),
    (lambda: F.one_hot(minigrad.tensor([-1, 1]), 3), IndexError, r"one_hot: class id -1 is out of bounds"),
    (lambda: F.kl_div(_t(3, 4), _t(3, 4), reduction="batch"), ValueError, "kl_div: reduction must be 'mean', "
                                                                          "'batchmean', 'sum' or 'none'"),
    (lambda: F.kl_div(_t(3, 4), _t(3, 5)), ValueError, r"kl_div: input of shape \(3, 4\) and target of shape "
                                                       r"\(3, 5\) do not broadcast"),
    (lambda: F.binary_cross_entropy_with_logits(_t(3, 4), _t(4)), ValueError,
     r"binary_cross_entropy_with_logits: target of shape \(4,\) must have the input's shape \(3, 4\)"),
    (lambda: F.binary_cross_entropy_with_logits(_t(3, 4), _t(3, 4), pos_weight=_t(3)), ValueError,
     r"binary_cross_entropy_with_logits: pos_weight of shape \(3,\) does not broadcast to the input's shape \(3, 4\)"),
    (lambda: F.binary_cross_entropy_with_logits(_t(3, 4), _t(3, 4), weight=_t(2, 3, 4)), ValueError,
     r"binary_cross_entropy_with_logits: weight of shape \(2, 3, 4\) does not broadcast"),
    (lambda: F.binary_cross_entropy_with_logits(_t(3), _t(3), reduction="avg"), ValueError,
     "binary_cross_entropy_with_logits: reduction must be"),
    (lambda: F.l1_loss(_t(3, 4), _t(3, 1)), ValueError, r"l1_loss: input of shape \(3, 4\) and target of shape "
                                                        r"\(3, 1\) differ"),
    (lambda: F.l1_loss(_t(3, 4), _t(3, 4), weight=_t(4)), ValueError, r"l1_loss: weight of shape \(4,\) must have"),
    (lambda: F.rms_norm(_t(3, 4), (3,)), ValueError, r"rms_norm: input of shape \(3, 4\) does not end in "
                                                     r"normalized_shape \(3,\)"),
    (lambda: F.rms_norm(_t(4), (2, 4)), ValueError, r"rms_norm: input of shape \(4,\) does not end in"),
    (lambda: F.rms_norm(_t(3, 4), (4,), _t(3)), ValueError, r"rms_norm: weight of shape \(3,\) does not match "
                                                            r"normalized_shape \(4,\)"),
    (lambda: F.normalize(_t(4)), IndexError, r"normalize: dimension 1 out of range"),
]


@pytest.mark.parametrize("call,error,message", ERRORS)
def test_errors_name_the_function_and_the_shapes(call, error, message):
    with pytest.raises(error, match=message):
        call()
