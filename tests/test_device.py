"""Devices: one code path on NumPy ("cpu") and on CuPy ("cuda"), proven without a GPU by "fakegpu".

The fake device (tests/fake_gpu.py) follows CuPy's rules strictly, so every op
run here on "fakegpu" shows that the engine never hands a host NumPy array to a
device op, never converts a device array to NumPy behind the user's back, and
never calls NumPy functions on device arrays. Results must match the CPU run.
The "cuda" parameter runs the same checks on a real GPU (`pytest -m gpu`).
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import fake_gpu
import minigrad
import minigrad.functional as F
from minigrad.autograd import Function
from minigrad.backend import canonical_device, get_backend

DEVICES = fake_gpu.device_params()
ACCELERATORS = [d for d in DEVICES if d != "cpu"]
ATOL, RTOL = 1e-5, 1e-4  # float32 agreement between devices


# -- the simulated device follows CuPy's rules ----------------------------------------------
class TestFakeGpuRules:
    def test_device_arrays_refuse_implicit_conversion_to_numpy(self):
        x = minigrad.ones(3, device="fakegpu")
        with pytest.raises(TypeError, match="Implicit conversion"):
            np.asarray(x.data)
        with pytest.raises(TypeError, match="implicit conversion"):
            np.asarray(x)  # the Tensor refuses too
        assert isinstance(x.data.get(), np.ndarray)

    def test_host_arrays_are_refused_by_operators_methods_and_xp_functions(self):
        x = minigrad.ones(3, device="fakegpu")
        host = np.ones(3, dtype=np.float32)
        xp = x.xp
        for attempt in (lambda: x.data + host, lambda: host + x.data, lambda: x.data.__iadd__(host),
                        lambda: xp.maximum(x.data, host), lambda: xp.concatenate([x.data, host]),
                        lambda: x.data.clip(host, None), lambda: x.data[np.array([0, 1])]):
            with pytest.raises(TypeError, match="Unsupported type"):
                attempt()
        assert float((x.data + 2.0).sum()) == 9.0  # Python scalars are fine

    def test_numpy_functions_on_device_arrays_raise(self):
        x = minigrad.ones(3, device="fakegpu")
        with pytest.raises(TypeError):
            np.exp(x.data)
        with pytest.raises(TypeError, match="numpy.sum"):
            np.sum(x.data)

    def test_reductions_and_integer_indexing_give_0d_device_arrays(self):
        x = minigrad.arange(6, device="fakegpu").reshape(2, 3)
        assert type(x.data.sum()) is fake_gpu.FakeArray and x.data.sum().ndim == 0
        assert type(x.data[1, 2]) is fake_gpu.FakeArray
        assert type(x.xp.max(x.data)) is fake_gpu.FakeArray

    def test_random_draws_must_go_through_the_backend(self):
        with pytest.raises(AttributeError, match="Backend"):
            minigrad.ones(1, device="fakegpu").xp.random

    def test_scatter_add_refuses_dtypes_without_gpu_atomics(self):
        backend = get_backend("fakegpu")
        target = backend.xp.zeros(3, dtype="int64")
        with pytest.raises(TypeError, match="int64"):
            backend.scatter_add(target, backend.asarray([0, 0]), backend.asarray([1, 2], dtype="int64"))

    def test_no_host_traffic_catches_downloads_and_implicit_syncs(self):
        x = minigrad.ones(3, device="fakegpu")
        with fake_gpu.no_host_traffic():
            y = (x * 2).sum()
            for leak in (y.item, y.numpy, lambda: bool(y.data > 1), lambda: float(y)):
                with pytest.raises(fake_gpu.HostTrafficError):
                    leak()
        assert y.item() == 6.0  # outside the block it is allowed


# -- devices by name ------------------------------------------------------------------------
def test_device_names():
    assert canonical_device("cpu") == "cpu"
    assert canonical_device("cuda") == "cuda:0" and canonical_device("cuda:1") == "cuda:1"
    assert canonical_device("fakegpu") == "fakegpu:0"
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        canonical_device("tpu")
    x = minigrad.zeros(2, device="fakegpu:0")
    assert x.device == "fakegpu:0" and x.device.type == "fakegpu" and x.device.index == 0


def test_cuda_is_available_is_a_plain_bool():
    available = minigrad.cuda.is_available()
    assert available in (True, False)
    assert minigrad.cuda.device_count() >= (1 if available else 0)


def test_cuda_without_cupy_explains_how_to_install_it():
    try:
        import cupy  # noqa: F401
        pytest.skip("CuPy is installed here")
    except ImportError:
        pass
    with pytest.raises(RuntimeError, match=r"pip install 'minigrad\[gpu\]'"):
        minigrad.zeros(2, device="cuda")


def test_set_default_device_moves_new_tensors_only():
    before = minigrad.zeros(1)
    minigrad.set_default_device("fakegpu")
    try:
        assert minigrad.get_default_device() == "fakegpu:0"
        for made in (minigrad.zeros(2), minigrad.randn(2), minigrad.tensor([1.0]), minigrad.arange(3)):
            assert made.device == "fakegpu:0" and type(made.data) is fake_gpu.FakeArray
        assert minigrad.zeros(1, device="cpu").device == "cpu"
    finally:
        minigrad.set_default_device("cpu")
    assert before.device == "cpu" and minigrad.zeros(1).device == "cpu"


def test_minigrad_device_environment_variable_sets_the_default():
    code = ("import fake_gpu, minigrad; t = minigrad.ones(2); "
            "print(minigrad.get_default_device(), t.device, type(t.data).__name__)")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, MINIGRAD_DEVICE="fakegpu:0",
               PYTHONPATH=os.pathsep.join([os.path.join(root, "tests"), root]))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["fakegpu:0", "fakegpu:0", "FakeArray"]


# -- making tensors on a device ----------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
def test_creation_functions_put_data_on_the_device(device):
    array_type = fake_gpu.array_type(device)
    made = [minigrad.zeros(2, 3, device=device), minigrad.ones(2, device=device),
            minigrad.full((2,), 7, device=device), minigrad.arange(5, device=device),
            minigrad.eye(3, device=device), minigrad.rand(4, device=device), minigrad.randn(4, device=device),
            minigrad.randint(0, 10, (4,), device=device), minigrad.tensor([[1.0, 2.0]], device=device),
            minigrad.tensor(np.arange(3.0), device=device)]
    for t in made:
        assert type(t.data) is array_type and t.device == canonical_device(device)
    assert [t.dtype for t in made[:4]] == [minigrad.float32, minigrad.float32, minigrad.int64, minigrad.int64]
    assert made[8].dtype == minigrad.float32 and made[9].dtype == minigrad.float64  # NumPy data keeps its dtype
    zl = minigrad.zeros_like(made[1])
    assert zl.device == made[1].device


@pytest.mark.parametrize("device", ACCELERATORS)
def test_manual_seed_makes_device_draws_reproducible(device):
    minigrad.manual_seed(3)
    first = minigrad.randn(5, device=device).numpy()
    minigrad.manual_seed(3)
    again = minigrad.randn(5, device=device).numpy()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, minigrad.randn(5, device=device).numpy())


# -- every op, forward and backward, on each device, against the CPU ---------------------------
def _f32(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _away_from_zero(rng, *shape):
    x = _f32(rng, *shape)
    return np.where(np.abs(x) < 0.1, 0.5, x).astype(np.float32)


def _positive(rng, *shape):
    return rng.uniform(0.5, 2.0, shape).astype(np.float32)


def _masked_rows():
    mask = np.zeros((3, 5), dtype=bool)
    mask[0, 1:] = True
    mask[2, :] = True  # a fully masked row: zeros forward, zero gradient
    return mask


def _with_zeros(rng, *shape):
    x = _f32(rng, *shape)
    x.reshape(-1)[::3] = 0.0  # zeros in the products of cumprod and prod
    return x


def _joined(*outputs):
    """Outputs of several shapes as one flat tensor (one upstream gradient reaches them all)."""
    return minigrad.cat([output.reshape(-1) for output in outputs])


OP_CASES = {
    "add_broadcast": (lambda a, b: a + b, lambda r: [_f32(r, 3, 4), _f32(r, 4)]),
    "sub_mul_scalars": (lambda a: 2.0 - a * 3 + a / 4, lambda r: [_f32(r, 3, 4)]),
    "mul_div": (lambda a, b: a * b / (b * b + 1), lambda r: [_f32(r, 2, 3), _f32(r, 2, 1)]),
    "pow": (lambda a, b: a ** 3 + b ** a.tanh(), lambda r: [_f32(r, 4), _positive(r, 4)]),
    "exp_log_sqrt_rsqrt": (lambda a: (a.exp() + 1).log() + (a * a + 1).sqrt() + (a * a + 1).rsqrt(),
                           lambda r: [_f32(r, 3, 4)]),
    "tanh_sigmoid": (lambda a: a.tanh() * a.sigmoid(), lambda r: [_f32(r, 3, 4) * 3]),
    "relu_abs": (lambda a: a.relu() + a.abs(), lambda r: [_away_from_zero(r, 3, 4)]),
    "gelu_exact": (lambda a: a.gelu(), lambda r: [_f32(r, 3, 4)]),
    "gelu_tanh": (lambda a: a.gelu("tanh"), lambda r: [_f32(r, 3, 4)]),
    "erf": (lambda a: minigrad.erf(a), lambda r: [_f32(r, 6)]),
    "maximum_minimum": (lambda a, b: minigrad.maximum(a, b) + minigrad.minimum(a, 0.3),
                        lambda r: [_f32(r, 3, 4), _f32(r, 4)]),
    "clip": (lambda a: a.clip(-0.5, 0.5), lambda r: [_away_from_zero(r, 3, 4)]),
    "where": (lambda a, b: minigrad.where(a > 0, a, b), lambda r: [_f32(r, 3, 4), _f32(r, 1, 4)]),
    "masked_fill": (lambda a: a.masked_fill(a > 0.5, -1.0), lambda r: [_f32(r, 3, 4)]),
    "sum_mean_var_std": (lambda a: a.sum(1) + a.mean(0, keepdim=True).sum() + a.var(1) + a.std(),
                         lambda r: [_f32(r, 3, 4)]),
    "amax_amin_max": (lambda a: a.amax(1) + a.amin(0).sum() + a.max(1).values + a.max(),
                      lambda r: [_f32(r, 3, 4)]),
    "logsumexp": (lambda a: a.logsumexp(-1), lambda r: [_f32(r, 3, 4) * 10]),
    "softmax_masked": (lambda a: a.masked_fill(minigrad.tensor(_masked_rows(), device=a.device),
                                               float("-inf")).softmax(-1), lambda r: [_f32(r, 3, 5)]),
    "log_softmax_masked": (lambda a: a.masked_fill(minigrad.tensor(_masked_rows(), device=a.device),
                                                   float("-inf")).log_softmax(-1).masked_fill(
        minigrad.tensor(_masked_rows(), device=a.device), 0.0), lambda r: [_f32(r, 3, 5)]),
    "matmul_batched": (lambda a, b: a @ b, lambda r: [_f32(r, 2, 3, 4), _f32(r, 4, 5)]),
    "matmul_broadcast_batch": (lambda a, b: a @ b, lambda r: [_f32(r, 2, 1, 3, 4), _f32(r, 5, 4, 2)]),
    "matmul_vectors": (lambda a, b: (a @ b) * (b @ b), lambda r: [_f32(r, 4), _f32(r, 4)]),
    "reshape_permute_transpose": (lambda a: a.reshape(4, 6).permute(1, 0).transpose(0, 1).unsqueeze(0).squeeze(0)
                                  .flatten().movedim(0, 0), lambda r: [_f32(r, 2, 3, 4)]),
    "expand_repeat": (lambda a: a.expand(3, 4) * a.repeat(3, 1), lambda r: [_f32(r, 1, 4)]),
    "cat_stack_split_chunk": (lambda a, b: minigrad.cat([a, b], 0).split(2, 0)[1] * minigrad.stack([a, b], 1)[:, 0]
                              + a.chunk(2, 1)[0].sum(), lambda r: [_f32(r, 2, 4), _f32(r, 2, 4)]),
    "getitem_basic": (lambda a: a[1:, ::2, None], lambda r: [_f32(r, 3, 4)]),
    "getitem_repeated_ids": (lambda a, i: a[i], lambda r: [_f32(r, 4, 3), np.array([0, 2, 0, 0, 3])]),
    "getitem_bool_mask": (lambda a: a[a > 0] * 2, lambda r: [_f32(r, 3, 4)]),  # a host sync on CuPy, allowed
    "getitem_list_and_tensor_mix": (lambda a: a[[1, 1], 1:], lambda r: [_f32(r, 3, 4)]),
    "gather_repeated": (lambda a, i: a.gather(1, i), lambda r: [_f32(r, 3, 4), np.array([[0, 0], [3, 1], [2, 2]])]),
    "argmax_then_gather": (lambda a: a.gather(1, a.argmax(1, keepdim=True)) + a.argmin(0).to(a.dtype).sum(),
                           lambda r: [_f32(r, 3, 4)]),
    "cast_round_trip": (lambda a: (a.double() * 2).float() + a.to(minigrad.float64).sum().float(),
                        lambda r: [_f32(r, 3)]),
    "clone": (lambda a: a.clone() * 2, lambda r: [_f32(r, 3)]),
    "linear": (lambda x, w, b: F.linear(x, w, b), lambda r: [_f32(r, 2, 3, 4), _f32(r, 5, 4), _f32(r, 5)]),
    "layer_norm": (lambda x, w, b: F.layer_norm(x, (5,), w, b), lambda r: [_f32(r, 2, 3, 5), _f32(r, 5), _f32(r, 5)]),
    "embedding_padding_repeated": (lambda i, w: F.embedding(i, w, padding_idx=0),
                                   lambda r: [np.array([[1, 0, 3], [3, 3, 1]]), _f32(r, 4, 3)]),
    "cross_entropy_smoothing_ignore": (lambda z, t: F.cross_entropy(z, t, label_smoothing=0.1),
                                       lambda r: [_f32(r, 4, 6), np.array([1, 5, -100, 1])]),
    "cross_entropy_classes_dim1": (lambda z, t: F.cross_entropy(z, t, reduction="sum"),
                                   lambda r: [_f32(r, 2, 6, 3), np.array([[0, 5, 2], [1, 1, 4]])]),
    "nll_loss": (lambda z, t: F.nll_loss(z.log_softmax(-1), t, ignore_index=2),
                 lambda r: [_f32(r, 4, 3), np.array([0, 2, 1, 1])]),
    "mse_loss": (lambda a, b: F.mse_loss(a, b), lambda r: [_f32(r, 3, 4), _f32(r, 3, 4)]),
    # the ops of issue 14
    "flip_roll_tril_triu": (lambda a: a.flip(0).roll(1, -1).tril() + a.triu(1).flip(-1, 0) + minigrad.roll(a, 3),
                            lambda r: [_f32(r, 3, 4)]),
    "index_select_repeat_interleave": (lambda a, i, c: _joined(a.index_select(1, i), a.repeat_interleave(2, dim=0),
                                                               a.repeat_interleave(c, dim=1),
                                                               a.repeat_interleave(c, dim=1, output_size=6)),
                                       lambda r: [_f32(r, 3, 4), np.array([3, 0, 3]), np.array([1, 0, 3, 2])]),
    "scatter_scatter_add": (lambda a, s, i: a.scatter(1, i, s) * 2 + a.scatter_add(1, i, s) + a.scatter(0, i[1:2], 0.5),
                            lambda r: [_f32(r, 3, 4), _f32(r, 3, 2), np.array([[3, 0], [1, 2], [2, 3]])]),
    "sort_argsort_topk": (lambda a: _joined(a.sort(-1).values, *a.sort(0, descending=True), a.argsort(1),
                                            a.topk(2).values, a.topk(1, dim=0, largest=False).values),
                          lambda r: [_f32(r, 3, 4)]),
    "cumsum_cumprod_prod_with_zeros": (lambda a: _joined(a.cumsum(1), a.cumprod(-1), a.cumprod(0), a.prod(0), a.prod()),
                                       lambda r: [_with_zeros(r, 3, 4)]),
    "einsum": (lambda q, k, m: _joined(minigrad.einsum("bhqd,bhkd->bhqk", q, k),
                                       minigrad.einsum("...ij,...jk->...ik", q, m), minigrad.einsum("bhqd->", q)),
               lambda r: [_f32(r, 2, 2, 3, 4), _f32(r, 2, 1, 5, 4), _f32(r, 4, 2)]),
    "mm_bmm_dot_outer": (lambda a, b: _joined(a[0].mm(b[0]), minigrad.bmm(a, b), a[0, 0].dot(b[0, :, 0]),
                                              minigrad.outer(a[0, 0], b[0, 0])),
                         lambda r: [_f32(r, 2, 3, 4), _f32(r, 2, 4, 3)]),
    "norm": (lambda a: _joined(a.norm(), a.norm(1, dim=1), a.norm(float("inf"), dim=0), a.norm(3, -1, keepdim=True),
                               minigrad.norm(a, "fro", dim=(0, 1))),
             lambda r: [_away_from_zero(r, 3, 4)]),
    "narrow_unbind_masked_select": (lambda a: _joined(a.narrow(1, 1, 2), *a.unbind(0), a.masked_select(a > 0)),
                                    lambda r: [_f32(r, 3, 4)]),  # masked_select: a host sync on CuPy, allowed
    "sin_cos_log1p_expm1_where": (lambda a: a.sin() * a.cos() + a.abs().log1p() + a.expm1().where(a > 0, a * 2),
                                  lambda r: [_f32(r, 3, 4)]),
}


def _run(device, fn, arrays, upstream_seed=7):
    """Forward and backward on `device` with a random upstream gradient; results as host arrays."""
    inputs = [minigrad.tensor(a, device=device, requires_grad=a.dtype.kind == "f") for a in arrays]
    out = fn(*inputs)
    assert out.device == canonical_device(device), "an op moved its result to another device"
    assert type(out.data) is get_backend(device).array_type
    upstream = np.random.default_rng(upstream_seed).standard_normal(out.shape).astype(np.float32)
    out.backward(minigrad.tensor(upstream, dtype=out.dtype, device=device))
    grads = []
    for x in inputs:
        if x.requires_grad:
            assert x.grad is not None and x.grad.device == x.device
            grads.append(x.grad.numpy())
    return out.detach().numpy(), grads


@pytest.mark.parametrize("device", ACCELERATORS)
@pytest.mark.parametrize("case", sorted(OP_CASES))
def test_op_forward_and_backward_match_the_cpu(case, device):
    fn, make_inputs = OP_CASES[case]
    arrays = make_inputs(np.random.default_rng(0))
    expected_out, expected_grads = _run("cpu", fn, arrays)
    out, grads = _run(device, fn, arrays)
    np.testing.assert_allclose(out, expected_out, atol=ATOL, rtol=RTOL)
    assert len(grads) == len(expected_grads)
    for grad, expected in zip(grads, expected_grads):
        np.testing.assert_allclose(grad, expected, atol=ATOL, rtol=RTOL)


def test_the_ops_of_issue_14_make_no_host_traffic():
    """Sorting, scans, products, einsum, scatter and sampling stay on the device (nonzero, masked_select,
    allclose and repeat_interleave without output_size cannot: their output size or value is the answer)."""
    x = minigrad.randn(3, 4, device="fakegpu", requires_grad=True)
    index = minigrad.tensor([[3, 0], [1, 2], [2, 3]], device="fakegpu")
    counts = minigrad.tensor([1, 0, 3, 2], device="fakegpu")
    weights = minigrad.rand(2, 5, device="fakegpu")
    fake_gpu.stats.clear()
    with fake_gpu.no_host_traffic():
        outputs = [x.flip(0), x.roll(1, 1), x.tril(), x.triu(-1), x.index_select(1, index[:, 0]),
                   x.repeat_interleave(2, dim=1), x.repeat_interleave(counts, dim=1, output_size=6),
                   x.scatter(1, index, x[:, :2]), x.scatter_add(1, index, x[:, 2:]), x.sort(1).values,
                   x.topk(2, dim=0).values, x.cumsum(0), x.cumprod(1), x.prod(1), x.prod(),
                   minigrad.einsum("ij,kj->ik", x, x), x.mm(x.T), minigrad.bmm(x[None], x.T[None]), x[0].dot(x[1]),
                   x[0].outer(x[1]), x.norm(), x.norm(1, dim=0), x.norm(float("inf")), x.narrow(1, 1, 2),
                   *x.unbind(0), x.where(x > 0, 0.0), x.sin(), x.cos(), x.exp().log1p(), x.expm1()]
        total = sum(output.sum() for output in outputs)
        (grad,) = minigrad.grad(total, x, create_graph=True)  # cumprod's exact, O(n^2) backward
        (grad * grad).sum().backward()
        tests = [x.argsort(), x.isnan(), x.isinf(), minigrad.isclose(x, x), minigrad.multinomial(weights, 3),
                 weights.multinomial(4, replacement=True), minigrad.linspace(0, 1, 5, device="fakegpu"),
                 x.new_zeros(2), x.new_full((2,), 3.0)]
        with minigrad.no_grad():
            x.detach().masked_fill_(x > 1, 1.0)
    assert fake_gpu.stats["downloads"] == 0 and fake_gpu.stats["syncs"] == 0
    assert all(t.device == "fakegpu:0" for t in tests) and x.grad.device == "fakegpu:0"


@pytest.mark.parametrize("device", ACCELERATORS)
def test_sampling_selecting_and_testing_on_the_device(device):
    x = minigrad.tensor([[0.0, 1.5, 0.0], [2.0, 0.0, -1.0]], device=device)
    np.testing.assert_array_equal(x.nonzero().numpy(), minigrad.tensor(x.numpy()).nonzero().numpy())
    assert [t.device for t in x.nonzero(as_tuple=True)] == [canonical_device(device)] * 2
    assert x.allclose(x.clone()) is True and not minigrad.allclose(x, x + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        assert minigrad.isnan(x / 0).numpy().tolist() == [[True, False, True], [False, True, False]]
    assert x.repeat_interleave(minigrad.tensor([2, 0], device=device), dim=0).numpy().tolist() == \
        [x.numpy()[0].tolist()] * 2
    minigrad.manual_seed(4)
    first = minigrad.multinomial(minigrad.tensor([0.1, 0.0, 0.9, 0.5], device=device), 3).numpy()
    minigrad.manual_seed(4)
    again = minigrad.multinomial(minigrad.tensor([0.1, 0.0, 0.9, 0.5], device=device), 3).numpy()
    assert first.tolist() == again.tolist() and 1 not in first.tolist() and len(set(first.tolist())) == 3
    drawn = minigrad.multinomial(minigrad.tensor([0.0, 1.0, 3.0], device=device), 4000, replacement=True).numpy()
    assert 0 not in drawn and abs((drawn == 2).mean() - 0.75) < 0.05


@pytest.mark.parametrize("device", ACCELERATORS)
def test_second_derivatives_on_the_device(device):
    def second(device):
        x = minigrad.tensor([0.3, -1.2, 2.0], device=device, requires_grad=True)
        (g,) = minigrad.grad((x.tanh() * x * x).sum(), x, create_graph=True)
        (gg,) = minigrad.grad(g.sum(), x)
        return gg.numpy()
    np.testing.assert_allclose(second(device), second("cpu"), atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("device", DEVICES)
def test_dropout_gradient_uses_the_forward_mask(device):
    x = minigrad.randn(200, device=device, requires_grad=True)
    y = F.dropout(x, p=0.3)
    y.sum().backward()
    kept = (y.detach() != 0).numpy()
    assert 0.5 < kept.mean() < 0.9
    np.testing.assert_allclose(x.grad.numpy(), kept / 0.7, rtol=1e-6)
    np.testing.assert_allclose(y.detach().numpy(), x.detach().numpy() * kept / 0.7, rtol=1e-6)


# -- tensors on two devices ---------------------------------------------------------------------
def _two_device_attempts(a, b):
    return {
        "add": lambda: a + b, "matmul": lambda: a @ b, "where": lambda: minigrad.where(a > 0, a, b),
        "compare": lambda: a < b, "cat": lambda: minigrad.cat([a, b]), "maximum": lambda: minigrad.maximum(a, b),
        "in-place": lambda: a.detach().add_(b), "index": lambda: a[minigrad.tensor([0], device=b.device)],
        "masked_fill": lambda: a.masked_fill(b > 0, 0.0),
    }


@pytest.mark.parametrize("devices", [("cpu", "fakegpu"), ("fakegpu", "cpu"), ("fakegpu:0", "fakegpu:1")])
def test_an_op_on_two_devices_names_both(devices):
    a = minigrad.ones(2, device=devices[0], requires_grad=True)
    b = minigrad.ones(2, device=devices[1])
    for name, attempt in _two_device_attempts(a, b).items():
        with pytest.raises(RuntimeError) as error:
            attempt()
        message = str(error.value)
        assert canonical_device(devices[0]) in message and canonical_device(devices[1]) in message, (name, message)


def test_a_host_array_slipped_into_a_tensor_op_fails_on_the_device():
    x = minigrad.ones(3, device="fakegpu")
    host = np.ones(3, dtype=np.float32)
    with pytest.raises(RuntimeError, match="cpu.*fakegpu:0|fakegpu:0.*cpu"):
        x + host  # the host array becomes a CPU tensor: two devices
    assert (minigrad.ones(3) + host).device == "cpu"  # on the CPU it is fine


class _LeakyDouble(Function):
    """A deliberately wrong op: it builds a NumPy array on the host inside forward."""

    def forward(self, x):
        return x * np.full(x.shape, 2.0, dtype=x.dtype)

    def backward(self, grad):
        return grad * 2


class _NumpyExp(Function):
    """Another wrong op: it calls NumPy instead of self.xp."""

    def forward(self, x):
        return np.exp(x)

    def backward(self, grad):
        return grad


def test_a_host_array_inside_an_op_fails_on_the_fake_gpu_but_not_on_the_cpu():
    cpu = minigrad.ones(3)
    np.testing.assert_array_equal(_LeakyDouble.apply(cpu).numpy(), [2, 2, 2])
    np.testing.assert_allclose(_NumpyExp.apply(cpu).numpy(), np.e)
    gpu = minigrad.ones(3, device="fakegpu")
    with pytest.raises(TypeError, match="Unsupported type"):
        _LeakyDouble.apply(gpu)
    with pytest.raises(TypeError):
        _NumpyExp.apply(gpu)


# -- moving between devices -----------------------------------------------------------------------
@pytest.mark.parametrize("device", ACCELERATORS)
def test_to_moves_data_and_sends_gradients_back(device):
    x = minigrad.tensor([1.0, -2.0, 3.0], requires_grad=True)
    on_device = x.to(device)
    assert on_device.device == canonical_device(device) and on_device.grad_fn is not None
    back = (on_device * on_device).to("cpu")
    assert back.device == "cpu"
    back.sum().backward()
    assert x.grad.device == "cpu"
    np.testing.assert_allclose(x.grad.numpy(), [2.0, -4.0, 6.0])
    assert on_device.to(device) is on_device  # already there: no copy, no node
    assert x.to(device, minigrad.float64).dtype == minigrad.float64


@pytest.mark.parametrize("device", ACCELERATORS)
def test_leaving_the_device_is_explicit(device):
    x = minigrad.tensor([[1.5, 2.5]], device=device)
    assert isinstance(x.numpy(), np.ndarray) and x.tolist() == [[1.5, 2.5]]
    assert x.sum().item() == 4.0 and float(x[0, 0]) == 1.5
    assert f"device='{canonical_device(device)}'" in repr(x)
    with pytest.raises(TypeError):
        np.asarray(x)


def test_in_place_and_setitem_on_the_device():
    x = minigrad.zeros(2, 3, device="fakegpu")
    with minigrad.no_grad():
        x[0] = minigrad.tensor([1.0, 2.0, 3.0], device="fakegpu")
        x[1, minigrad.tensor([0, 2], device="fakegpu")] = 5.0
        x.add_(1.0).mul_(2.0)
    np.testing.assert_array_equal(x.numpy(), [[4, 6, 8], [12, 2, 12]])
    with pytest.raises(RuntimeError, match="cpu"):
        x.copy_(minigrad.zeros(2, 3))


# -- modules ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("device", ACCELERATORS)
def test_module_to_moves_parameters_buffers_and_gradients(device):
    nn = pytest.importorskip("nn")
    model = nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3))
    model.register_buffer("scale", minigrad.tensor([2.0]))
    x = minigrad.randn(5, 4)
    model(x).sum().backward()
    expected = {name: p.detach().numpy() for name, p in model.named_parameters()}
    assert model.to(device) is model
    array_type = fake_gpu.array_type(device)
    for name, p in model.named_parameters():
        assert p.device == canonical_device(device) and type(p.data) is array_type
        assert p.grad.device == p.device and p.requires_grad and p.is_leaf
        np.testing.assert_array_equal(p.detach().numpy(), expected[name])
    assert model.scale.device == canonical_device(device)
    model.zero_grad()
    (model(x.to(device)) * model.scale).sum().backward()
    assert all(p.grad.device == canonical_device(device) for p in model.parameters())
    model.to("cpu")
    assert all(p.device == "cpu" for p in model.parameters()) and model.scale.device == "cpu"


def test_forward_backward_of_a_layer_makes_no_host_traffic():
    """The proof that a training step never waits on the GPU: any download or sync raises here."""
    nn = pytest.importorskip("nn")
    model = nn.Sequential(nn.Embedding(10, 8, padding_idx=0), nn.LayerNorm(8), nn.Linear(8, 10),
                          nn.Dropout(0.1)).to("fakegpu")
    model.train()
    ids = minigrad.tensor([[1, 2, 0], [3, 3, 9]], device="fakegpu")
    target = minigrad.tensor([[2, 0, 1], [4, 4, -100]], device="fakegpu")
    fake_gpu.stats.clear()
    with fake_gpu.no_host_traffic():
        logits = model(ids)
        scores = logits.masked_fill((ids == 0).unsqueeze(-1), float("-inf"))  # fully masked rows too
        loss = (F.cross_entropy(logits.movedim(-1, 1), target, label_smoothing=0.1)
                + (scores.softmax(-1) * logits).sum() * 0.01)
        loss.backward()
    assert fake_gpu.stats["downloads"] == 0 and fake_gpu.stats["syncs"] == 0
    assert np.isfinite(loss.item())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [minigrad.float16, minigrad.float32, minigrad.float64])
def test_random_draws_in_every_float_dtype(device, dtype):
    """NumPy's generators draw only float32/64; the backend casts for float16 (CuPy does the same)."""
    for draw in (minigrad.rand, minigrad.randn):
        x = draw(1000, dtype=dtype, device=device)
        assert x.dtype == dtype and x.device == canonical_device(device)
    u = minigrad.rand(1000, dtype=dtype, device=device).numpy()
    assert 0.0 <= u.min() and u.max() <= 1.0 and 0.4 < u.mean() < 0.6


def test_bad_device_names_are_refused_clearly():
    for name in ("cuda:x", "cpu:1", "gpu"):
        with pytest.raises(ValueError, match="unknown device"):
            canonical_device(name)
    assert canonical_device("cpu:0") == "cpu"


@pytest.mark.parametrize("device", ACCELERATORS)
def test_gradcheck_in_float64_on_the_device(device):
    """Finite differences against autograd with the tensors on the device (float64 stays float64 there)."""
    rng = np.random.default_rng(0)

    def on_device(*shape):
        return minigrad.tensor(rng.standard_normal(shape), device=device, requires_grad=True)

    x, w, b = on_device(2, 3, 4), on_device(4), on_device(4)
    assert F.layer_norm(x, (4,), w, b).dtype == minigrad.float64
    assert minigrad.gradcheck(lambda x, w, b: F.layer_norm(x, (4,), w, b).softmax(-1), (x, w, b))
    assert minigrad.gradgradcheck(lambda x: (x.tanh() @ x.mT).logsumexp(-1), (x,))
    ids = minigrad.tensor([[1, 0, 1], [2, 2, 2]], device=device)
    table = on_device(3, 4)
    assert minigrad.gradcheck(lambda t: F.embedding(ids, t).gelu(), (table,))  # repeated ids: scatter-add
    assert minigrad.gradcheck(lambda t: F.cross_entropy(t, minigrad.tensor([3, 1, 0], device=device),
                                                        label_smoothing=0.2), (on_device(3, 4),))
