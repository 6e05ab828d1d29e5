"""Forward values and gradients of every op against PyTorch, on seeded float32 inputs.

`compare` runs one function in both libraries: it receives `lib`, a namespace whose
`ops` is `minigrad` or `torch`, whose `F` is the matching functional module and whose
`tensor` makes constants (integer targets, boolean masks). Forward values must agree
within atol 1e-5, rtol 1e-4 and gradients within atol 1e-4, rtol 1e-3, with a random
upstream gradient (not all ones, so that errors cannot cancel in a sum).
"""
from types import SimpleNamespace

import numpy as np
import pytest

import minigrad
import minigrad.functional as mF

torch = pytest.importorskip("torch")
tF = torch.nn.functional

MG = SimpleNamespace(name="minigrad", ops=minigrad, F=mF, tensor=minigrad.tensor)
TORCH = SimpleNamespace(name="torch", ops=torch, F=tF, tensor=torch.tensor)


def _inputs(shapes, kind, seed):
    rng = np.random.default_rng(seed)
    arrays = []
    for i, shape in enumerate(shapes):
        if kind == "pos":
            a = rng.uniform(0.5, 2.0, shape)
        elif kind == "away":
            a = rng.uniform(0.2, 1.5, shape) * rng.choice([-1.0, 1.0], shape)
        elif kind == "distinct":
            size = int(np.prod(shape, dtype=np.int64))
            a = (rng.permutation(size) * 0.1 + 0.013 * i).reshape(shape) - size * 0.05
        else:
            a = rng.standard_normal(shape)
        arrays.append(np.asarray(a, dtype=np.float32))
    return arrays


def compare(fn, *shapes, kind="any", grad=True, seed=0):
    """Run fn(lib, *inputs) in minigrad and torch; compare outputs and input gradients."""
    arrays = _inputs(shapes, kind, seed)
    mg_inputs = [minigrad.tensor(a, requires_grad=grad) for a in arrays]
    torch_inputs = [torch.tensor(a, requires_grad=grad) for a in arrays]
    mg_out, torch_out = fn(MG, *mg_inputs), fn(TORCH, *torch_inputs)
    mg_outs = mg_out if isinstance(mg_out, (tuple, list)) else (mg_out,)
    torch_outs = torch_out if isinstance(torch_out, (tuple, list)) else (torch_out,)
    assert len(mg_outs) == len(torch_outs)
    rng = np.random.default_rng(seed + 100)
    mg_total, torch_total = None, None
    for m, t in zip(mg_outs, torch_outs):
        expected = t.detach().numpy()
        got = m.detach().numpy()
        assert got.shape == expected.shape, f"shape {got.shape} vs torch {expected.shape}"
        assert got.dtype == expected.dtype or (got.dtype.kind, expected.dtype.kind) == ("i", "i"), \
            f"dtype {got.dtype} vs torch {expected.dtype}"
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-4, err_msg="forward")
        if grad and expected.dtype.kind == "f" and t.requires_grad:
            v = rng.standard_normal(expected.shape).astype(np.float32)
            t_term = (t * torch.tensor(v)).sum()
            torch_total = t_term if torch_total is None else torch_total + t_term
            if m.requires_grad:  # torch marks sign/round outputs as differentiable (with zero gradient)
                m_term = (m * minigrad.tensor(v)).sum()
                mg_total = m_term if mg_total is None else mg_total + m_term
    if torch_total is None:
        return
    torch_total.backward()
    if mg_total is not None:
        mg_total.backward()
    for i, (m, t) in enumerate(zip(mg_inputs, torch_inputs)):
        if t.grad is None or m.grad is None:
            for g in (t.grad, m.grad):
                assert g is None or not np.asarray(g.detach().numpy()).any(), f"input {i}: only one has a gradient"
            continue
        assert m.grad.dtype == minigrad.float32
        np.testing.assert_allclose(m.grad.numpy(), t.grad.numpy(), atol=1e-4, rtol=1e-3, err_msg=f"grad of input {i}")


# -- elementwise ------------------------------------------------------------------------------
UNARY = [
    ("neg", lambda L, x: -x, "any"),
    ("exp", lambda L, x: L.ops.exp(x), "any"),
    ("log", lambda L, x: L.ops.log(x), "pos"),
    ("sqrt", lambda L, x: x.sqrt(), "pos"),
    ("rsqrt", lambda L, x: L.ops.rsqrt(x), "pos"),
    ("tanh", lambda L, x: x.tanh(), "any"),
    ("sigmoid", lambda L, x: L.ops.sigmoid(x), "any"),
    ("relu", lambda L, x: L.ops.relu(x), "away"),
    ("gelu", lambda L, x: L.F.gelu(x), "any"),
    ("gelu_tanh", lambda L, x: L.F.gelu(x, approximate="tanh"), "any"),
    ("erf", lambda L, x: L.ops.erf(x), "any"),
    ("abs", lambda L, x: x.abs(), "away"),
    ("clip", lambda L, x: L.ops.clip(x, -0.5, 0.7), "away"),
    ("clamp_min", lambda L, x: x.clamp(min=0.1), "away"),
    ("pow3", lambda L, x: x ** 3, "any"),
    ("pow_frac", lambda L, x: x ** 1.5, "pos"),
    ("rpow", lambda L, x: 2.0 ** x, "any"),
    ("rdiv", lambda L, x: 3.0 / x, "pos"),
    ("rsub", lambda L, x: 1.0 - x, "any"),
    ("masked_fill", lambda L, x: x.masked_fill(x > 0.3, -2.0), "away"),
    ("where_scalar", lambda L, x: L.ops.where(x > 0, x, 0.0), "away"),
    ("sign", lambda L, x: L.ops.sign(x), "away"),
]


@pytest.mark.parametrize("shape", [(), (1,), (3, 4)], ids=str)
@pytest.mark.parametrize("name, fn, kind", UNARY, ids=[u[0] for u in UNARY])
def test_unary(name, fn, kind, shape):
    compare(fn, shape, kind=kind)


BINARY = [
    ("add", lambda L, a, b: a + b, "any"),
    ("sub", lambda L, a, b: a - b, "any"),
    ("mul", lambda L, a, b: a * b, "any"),
    ("div", lambda L, a, b: a / b, "pos"),
    ("pow", lambda L, a, b: a ** b, "pos"),
    ("maximum", lambda L, a, b: L.ops.maximum(a, b), "distinct"),
    ("minimum", lambda L, a, b: L.ops.minimum(a, b), "distinct"),
    ("where", lambda L, a, b: L.ops.where(a > b, a, b), "distinct"),
    ("compare", lambda L, a, b: ((a < b), (a <= b), (a > b), (a >= b), (a == a), (a != b)), "distinct"),
]


@pytest.mark.parametrize("shapes", [((), ()), ((3, 1), (1, 4)), ((2, 3), ()), ((1,), (2, 3)), ((2, 1, 3), (4, 1))],
                         ids=str)
@pytest.mark.parametrize("name, fn, kind", BINARY, ids=[b[0] for b in BINARY])
def test_binary(name, fn, kind, shapes):
    compare(fn, *shapes, kind=kind)


def test_maximum_ties_share_the_gradient_like_torch():
    compare(lambda L, a: L.ops.maximum(a, a * 0 + a.detach()), (5,))


# -- reductions -------------------------------------------------------------------------------
REDUCTIONS = [
    ("sum", lambda L, x, d, k: x.sum() if d is None else x.sum(d, keepdim=k)),
    ("mean", lambda L, x, d, k: x.mean() if d is None else L.ops.mean(x, d, keepdim=k)),
    ("var", lambda L, x, d, k: x.var() if d is None else x.var(d, keepdim=k)),
    ("var_biased", lambda L, x, d, k: x.var(d, keepdim=k, correction=0) if d is not None else x.var(correction=0)),
    ("std", lambda L, x, d, k: x.std() if d is None else x.std(d, keepdim=k)),
    ("amax", lambda L, x, d, k: x.amax() if d is None else x.amax(d, keepdim=k)),
    ("amin", lambda L, x, d, k: x.amin() if d is None else L.ops.amin(x, d, keepdim=k)),
    ("logsumexp", lambda L, x, d, k: x.logsumexp((0, 1, 2) if d is None else d, keepdim=k)),
]


@pytest.mark.parametrize("dim, keepdim", [(None, False), (0, True), (-1, False), ((0, 2), True), ((-1, -2), False)],
                         ids=str)
@pytest.mark.parametrize("name, fn", REDUCTIONS, ids=[r[0] for r in REDUCTIONS])
def test_reduction(name, fn, dim, keepdim):
    compare(lambda L, x: fn(L, x, dim, keepdim), (2, 3, 4), kind="distinct")


@pytest.mark.parametrize("dim", [0, -1])
@pytest.mark.parametrize("keepdim", [False, True])
def test_max_min_argmax_with_dim(dim, keepdim):
    compare(lambda L, x: (*x.max(dim, keepdim=keepdim), *L.ops.min(x, dim, keepdim=keepdim),
                          x.argmax(dim, keepdim=keepdim), L.ops.argmin(x, dim)), (3, 4), kind="distinct")
    compare(lambda L, x: (x.max(), x.min(), x.argmax()), (3, 4), kind="distinct")


def test_max_with_ties_like_torch():
    compare(lambda L, x: (x * 0 + 1).max() + (x.round() if L is TORCH else x * 0).sum() * 0 + x.max(), (4,))


# -- matmul -----------------------------------------------------------------------------------
@pytest.mark.parametrize("shapes", [((3,), (3,)), ((3,), (3, 4)), ((2, 3), (3,)), ((2, 3), (3, 4)),
                                    ((5, 2, 3), (3, 4)), ((2, 1, 2, 3), (4, 3, 2)), ((3,), (2, 3, 4)),
                                    ((2, 2, 3), (3,))], ids=str)
def test_matmul(shapes):
    compare(lambda L, a, b: a @ b, *shapes)
    compare(lambda L, a, b: L.ops.matmul(a, b), *shapes)


# -- shape ops --------------------------------------------------------------------------------
SHAPE_OPS = [
    ("reshape", lambda L, x: x.reshape(4, -1)),
    ("view", lambda L, x: x.view(2, 12)),
    ("transpose", lambda L, x: x.transpose(0, -1)),
    ("swapaxes", lambda L, x: L.ops.swapaxes(x, 1, 2)),
    ("permute", lambda L, x: x.permute(2, 0, 1)),
    ("mT", lambda L, x: x.mT),
    ("movedim", lambda L, x: x.movedim(0, -1)),
    ("expand", lambda L, x: x[:1].expand(2, 5, 3, 4)),
    ("broadcast_to", lambda L, x: L.ops.broadcast_to(x[:, :1], (3, 2, 3, 4))),
    ("squeeze", lambda L, x: x[:, :1].squeeze()),
    ("squeeze_dim", lambda L, x: x[:, :1].squeeze(-2)),
    ("unsqueeze", lambda L, x: x.unsqueeze(-1)),
    ("flatten", lambda L, x: x.flatten(1)),
    ("cat", lambda L, x: L.ops.cat([x, x * 2, x[:, :1]], dim=1)),
    ("stack", lambda L, x: L.ops.stack([x, x.exp()], dim=-1)),
    ("split", lambda L, x: x.split(1, dim=1)),
    ("split_sections", lambda L, x: x.split([1, 3], dim=-1)),
    ("chunk", lambda L, x: x.chunk(3, dim=-1)),
    ("repeat", lambda L, x: x.repeat(2, 1, 1, 2)),
]


@pytest.mark.parametrize("name, fn", SHAPE_OPS, ids=[s[0] for s in SHAPE_OPS])
def test_shape_op(name, fn):
    compare(fn, (2, 3, 4))


# -- indexing ---------------------------------------------------------------------------------
INDICES = [
    ("int", lambda L, x: x[1]),
    ("slices", lambda L, x: x[1:, :2]),
    ("negative_step", lambda L, x: x.flip(0) if L is TORCH else x[::-1]),
    ("none_ellipsis", lambda L, x: x[None, ..., 1]),
    ("int_array_repeats", lambda L, x: x[L.tensor([0, 2, 2, 0])]),
    ("two_arrays", lambda L, x: x[L.tensor([0, 0, 3]), L.tensor([1, 1, 2])]),
    ("bool_mask", lambda L, x: x[x > 0]),
    ("slice_and_array", lambda L, x: x[1:3, L.tensor([2, 0, 2])]),
    ("gather", lambda L, x: x.gather(1, L.tensor([[0, 0], [2, 1], [1, 1], [0, 2]]))),
]


@pytest.mark.parametrize("name, fn", INDICES, ids=[i[0] for i in INDICES])
def test_indexing(name, fn):
    compare(fn, (4, 3), kind="away")


# -- fused ops --------------------------------------------------------------------------------
@pytest.mark.parametrize("dim", [0, -1])
def test_softmax_and_log_softmax(dim):
    compare(lambda L, x: (L.F.softmax(x, dim), L.F.log_softmax(x, dim), x.softmax(dim), x.log_softmax(dim)), (3, 5))


def test_softmax_with_extreme_and_masked_values():
    def fn(L, x):
        mask = L.tensor([[False, True, False, False], [False, False, False, False]])
        big = x * L.tensor([[1.0, 1.0, 1.0, 1.0], [1000.0, 1.0, 1.0, -1000.0]])
        return big.masked_fill(mask, float("-inf")).softmax(-1), big.log_softmax(-1)

    compare(fn, (2, 4))


CE_CASES = [dict(), dict(label_smoothing=0.1), dict(ignore_index=2), dict(ignore_index=2, label_smoothing=0.2),
            dict(reduction="sum", label_smoothing=0.3), dict(reduction="none", ignore_index=0, label_smoothing=0.1)]


@pytest.mark.parametrize("kwargs", CE_CASES, ids=str)
def test_cross_entropy(kwargs):
    compare(lambda L, x: L.F.cross_entropy(x, L.tensor([0, 2, 4, 2]), **kwargs), (4, 5))
    compare(lambda L, x: L.F.cross_entropy(x, L.tensor([[0, 2, 1], [2, 2, 0]]), **kwargs), (2, 3, 3))
    compare(lambda L, x: L.F.cross_entropy(x, L.tensor(2), **kwargs), (5,))


def test_nll_and_mse():
    compare(lambda L, x: L.F.nll_loss(x.log_softmax(-1), L.tensor([0, 2, 1]), ignore_index=1), (3, 4))
    compare(lambda L, x, y: (L.F.mse_loss(x, y), L.F.mse_loss(x, y, reduction="sum")), (3, 4), (3, 4))


@pytest.mark.parametrize("normalized_shape", [(4,), (3, 4)], ids=str)
def test_layer_norm(normalized_shape):
    compare(lambda L, x, w, b: L.F.layer_norm(x, normalized_shape, w, b, eps=1e-5), (2, 3, 4), normalized_shape,
            normalized_shape)
    compare(lambda L, x: L.F.layer_norm(x, normalized_shape), (2, 3, 4))


def test_linear_and_embedding():
    compare(lambda L, x, w, b: L.F.linear(x, w, b), (2, 3, 4), (5, 4), (5,))
    compare(lambda L, w: L.F.embedding(L.tensor([[1, 4, 1], [0, 1, 2]]), w), (5, 3))
    compare(lambda L, w: L.F.embedding(L.tensor([[1, 4, 1], [0, 1, 2]]), w, padding_idx=1), (5, 3))


def test_dropout_statistics_and_scaling():
    """Masks come from different generators, so compare what must hold in both: inverted scaling."""
    x = minigrad.ones(20000, requires_grad=True)
    y = mF.dropout(x, p=0.25)
    kept = y.detach().numpy() != 0
    np.testing.assert_allclose(y.detach().numpy()[kept], 1 / 0.75, rtol=1e-6)
    assert abs(kept.mean() - 0.75) < 0.02
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), y.detach().numpy())
    assert mF.dropout(x, p=0.25, training=False) is x


def test_a_small_model_end_to_end():
    def fn(L, x, w1, b1, w2, gamma, beta):
        h = L.F.gelu(L.F.linear(x, w1, b1))
        h = L.F.layer_norm(h, (6,), gamma, beta)
        attention = (h @ h.mT / 6 ** 0.5).softmax(-1)
        logits = L.F.linear(attention @ h, w2)
        return L.F.cross_entropy(logits.reshape(-1, 5), L.tensor([1, 0, 4, 3, 2, 0]), label_smoothing=0.1,
                                 ignore_index=0)

    compare(fn, (2, 3, 4), (6, 4), (6,), (5, 6), (6,), (6,))


# -- result dtypes of mixed-dtype ops (pitfall #4: no float64 creeping in where torch keeps float32) --------
_DTYPE_CASES = [
    "lib.arange(4) / 2",
    "lib.arange(4) / lib.arange(1, 5)",
    "lib.arange(4) * 0.5",
    "0.5 * lib.arange(4)",
    "lib.arange(4) + 1",
    "lib.ones(4) + lib.arange(4)",
    "lib.arange(4) - lib.ones(4)",
    "lib.ones(4) * lib.tensor(2.0, dtype=lib.float64)",
    "lib.ones(4, dtype=lib.float64) * lib.tensor(2.0)",
    "lib.ones(4, dtype=lib.float16) * lib.tensor(2.0)",
    "lib.ones(4, dtype=lib.float16) + 2.5",
    "lib.arange(4) * lib.tensor(2.0, dtype=lib.float64)",
    "lib.arange(4).to(lib.int32) + lib.tensor(2)",
    "lib.arange(4).to(lib.int32) + lib.arange(4)",
    "lib.arange(4).to(lib.int32) * 2.0",
    "lib.tensor([True, False]) + 1",
    "lib.tensor([True, False]) * 1.5",
    "lib.tensor([True, False]) & lib.tensor([True, True])",
    "2 ** lib.arange(3)",
    "2.0 ** lib.arange(3)",
    "lib.arange(3) ** 0.5",
    "lib.ones(3) ** lib.arange(3)",
    "lib.maximum(lib.arange(3), lib.ones(3))",
    "lib.minimum(lib.ones(3, dtype=lib.float64), lib.ones(3))",
    "lib.where(lib.arange(3) > 0, lib.arange(3), 0.5)",
    "lib.where(lib.arange(3) > 0, lib.ones(3), lib.arange(3))",
    "lib.cat([lib.ones(2), lib.arange(2)])",
    "lib.cat([lib.ones(2), lib.ones(2, dtype=lib.float64)])",
    "lib.stack([lib.arange(2), lib.ones(2)])",
    "lib.stack([lib.tensor(1), lib.tensor(1.0)])",
]


@pytest.mark.parametrize("expression", _DTYPE_CASES)
def test_result_dtype_of_mixed_operands_matches_torch(expression):
    ours = eval(expression, {"lib": minigrad})
    theirs = eval(expression, {"lib": torch})
    assert str(ours.dtype) == str(theirs.dtype).removeprefix("torch."), expression
    np.testing.assert_allclose(ours.numpy().astype(np.float64), theirs.numpy().astype(np.float64))


def test_mixed_dtype_gradient_flows_back_in_each_operands_own_dtype():
    x = minigrad.ones(3, requires_grad=True)
    scale = minigrad.tensor(2.0, dtype=minigrad.float64, requires_grad=True)
    (x * scale).sum().backward()
    assert x.grad.dtype == minigrad.float32 and scale.grad.dtype == minigrad.float64
    assert x.grad.numpy().tolist() == [2.0] * 3 and scale.grad.item() == 3.0


def test_mean_of_an_integer_tensor_is_refused_like_torch():
    with pytest.raises(RuntimeError):
        torch.arange(4).mean()
    with pytest.raises(RuntimeError, match="floating-point"):
        minigrad.arange(4).mean()


def test_expand_refuses_minus_one_in_a_new_leading_dim_like_torch():
    with pytest.raises(RuntimeError):
        torch.ones(3).expand(-1, 3)
    with pytest.raises(ValueError, match="leading"):
        minigrad.ones(3).expand(-1, 3)
    with pytest.raises(ValueError, match="non-negative"):
        minigrad.ones(3).expand(2, -2)
    # -1 on an existing dim keeps its size, as in torch
    assert minigrad.ones(3, 1).expand(2, -1, 4).shape == tuple(torch.ones(3, 1).expand(2, -1, 4).shape)


@pytest.mark.parametrize("dim, index_shape", [(1, (1, 2)), (0, (2, 1)), (1, (2, 5)), (0, (4, 2)), (-1, (3, 1))])
def test_gather_with_a_smaller_index_matches_torch(dim, index_shape):
    x = np.arange(12.0, dtype=np.float32).reshape(3, 4)
    index = np.random.default_rng(2).integers(0, x.shape[dim], index_shape)
    theirs = torch.tensor(x).gather(dim, torch.tensor(index))
    ours = minigrad.tensor(x).gather(dim, minigrad.tensor(index))
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_gather_with_an_index_larger_than_the_input_off_dim_is_refused_like_torch():
    x, index = np.ones((3, 4), dtype=np.float32), np.zeros((4, 2), dtype=np.int64)
    with pytest.raises(RuntimeError):
        torch.tensor(x).gather(1, torch.tensor(index))
    with pytest.raises(ValueError, match="larger than the input"):
        minigrad.tensor(x).gather(1, minigrad.tensor(index))


@pytest.mark.parametrize("bad", [-1, 4])
def test_gather_with_an_index_out_of_bounds_is_refused_like_torch(bad):
    """NumPy would read index -1 as the last element; torch refuses it, and so do we (on the CPU)."""
    x, index = np.ones((3, 4), dtype=np.float32), np.array([[0, bad], [1, 2]])
    with pytest.raises(RuntimeError, match="out of bounds"):
        torch.tensor(x).gather(1, torch.tensor(index))
    with pytest.raises(IndexError, match=f"gather: index {bad} is out of bounds"):
        minigrad.tensor(x).gather(1, minigrad.tensor(index))


@pytest.mark.parametrize("base", [0.0, -2.0, 2.0, 0])
def test_pow_with_a_python_number_base_gradient_matches_torch(base):
    exponent = np.array([0.0, 1.0, 2.5, 3.0], dtype=np.float32)
    e_t = torch.tensor(exponent, requires_grad=True)
    (base ** e_t).sum().backward()
    e_m = minigrad.tensor(exponent, requires_grad=True)
    with np.errstate(invalid="ignore"):
        (base ** e_m).sum().backward()
    np.testing.assert_allclose(e_m.grad.numpy(), e_t.grad.numpy(), rtol=1e-6)


@pytest.mark.parametrize("case", ["min", "max", "both", "broadcast", "min_above_max", "zero_dim_min"])
def test_clamp_with_tensor_bounds_matches_torch(case):
    """Values and gradients to x and to the tensor bounds, including ties and min > max."""
    x = np.array([[0.0, 1.0, 2.0, 3.0], [4.0, 1.0, 3.0, 2.0]], dtype=np.float32)
    low = np.array([[1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 2.0, 2.0]], dtype=np.float32)
    high = np.array([[3.0, 3.0, 3.0, 3.0], [3.0, 2.0, 2.0, 1.5]], dtype=np.float32)
    upstream = np.arange(1.0, 9.0, dtype=np.float32).reshape(2, 4)
    results = []
    for lib in (minigrad, torch):
        tx, tlow, thigh = (lib.tensor(a, requires_grad=True) for a in (x, low, high[:1] if case == "broadcast" else high))
        if case == "min":
            y, bounds = tx.clamp(min=tlow), [tlow]
        elif case == "max":
            y, bounds = tx.clamp(max=thigh), [thigh]
        elif case == "min_above_max":
            y, bounds = lib.clamp(tx, thigh, tlow), [tlow, thigh]
        elif case == "zero_dim_min":
            tlow = lib.tensor(1.5, requires_grad=True)
            y, bounds = lib.clamp(tx, min=tlow, max=thigh), [tlow, thigh]
        else:
            y, bounds = lib.clamp(tx, tlow, thigh), [tlow, thigh]
        y.backward(lib.tensor(upstream))
        results.append([y.detach().numpy(), tx.grad.numpy()] + [b.grad.numpy() for b in bounds])
    for ours, theirs in zip(*results):
        np.testing.assert_array_equal(ours, theirs)
