"""Every differentiable op, gradchecked in float64 against central finite differences.

Shapes cover scalars (), (1,), broadcasting (3, 1) with (1, 4), matmul batch dims,
negative dims and keepdim. Inputs are kept away from kinks (relu, abs, clip), ties
(max, maximum) and domain edges (log, sqrt, division) so finite differences are exact.
The second table is run through gradgradcheck: the ops whose backward is itself
differentiable, which is everything built from smooth Tensor ops.
"""
import numpy as np
import pytest

import minigrad
import minigrad.functional as F


def make(shape, kind="any", seed=0):
    """A float64 leaf that requires grad; `kind` picks a domain that is safe for finite differences."""
    rng = np.random.default_rng(seed)
    size = int(np.prod(shape, dtype=np.int64))
    if kind == "any":
        data = rng.standard_normal(shape)
    elif kind == "pos":
        data = rng.uniform(0.5, 2.0, shape)
    elif kind == "away":  # |x| >= 0.2: no kink of relu/abs/clip within eps
        data = rng.uniform(0.2, 1.5, shape) * rng.choice([-1.0, 1.0], shape)
    elif kind == "distinct":  # values 0.1 apart at least: no ties for max/min
        data = (rng.permutation(size) * 0.1 + rng.uniform(0, 0.05, size)).reshape(shape) - size * 0.05
    else:
        raise ValueError(kind)
    return minigrad.tensor(np.asarray(data, dtype=np.float64), dtype=minigrad.float64, requires_grad=True)


def check(fn, *specs, second_order=False):
    inputs = [make(shape, kind, seed=i) for i, (shape, kind) in enumerate(specs)]
    assert minigrad.gradcheck(fn, inputs)
    if second_order:
        assert minigrad.gradgradcheck(fn, inputs)


SCALAR, ONE, COL, ROW, MAT = (), (1,), (3, 1), (1, 4), (2, 3)

# (id, fn, input specs)
UNARY = [
    ("neg", lambda x: -x, "any"),
    ("neg_fn", minigrad.neg, "any"),
    ("exp", minigrad.exp, "any"),
    ("log", minigrad.log, "pos"),
    ("sqrt", minigrad.sqrt, "pos"),
    ("rsqrt", minigrad.rsqrt, "pos"),
    ("tanh", minigrad.tanh, "any"),
    ("sigmoid", minigrad.sigmoid, "any"),
    ("relu", minigrad.relu, "away"),
    ("gelu", minigrad.gelu, "any"),
    ("gelu_tanh", lambda x: minigrad.gelu(x, approximate="tanh"), "any"),
    ("erf", minigrad.erf, "any"),
    ("abs", minigrad.abs, "away"),
    ("clip", lambda x: minigrad.clip(x, -0.5, 0.7), "away"),
    ("clip_min_only", lambda x: x.clamp(min=0.1), "away"),
    ("pow_scalar", lambda x: x ** 3, "any"),
    ("pow_fractional", lambda x: x ** 2.5, "pos"),
    ("pow_negative", lambda x: x ** -1.5, "pos"),
    ("pow_zero", lambda x: x ** 0, "any"),
    ("rpow", lambda x: 2.0 ** x, "any"),
    ("scalar_rdiv", lambda x: 3.0 / x, "pos"),
    ("scalar_rsub", lambda x: 1.0 - x, "any"),
    ("clone", lambda x: x.clone(), "any"),
    ("masked_fill", lambda x: x.masked_fill(x > 0.3, -2.0), "away"),
    ("where_scalar_branch", lambda x: minigrad.where(x > 0, x, 0.0), "away"),
]


@pytest.mark.parametrize("shape", [SCALAR, ONE, MAT])
@pytest.mark.parametrize("name, fn, kind", UNARY, ids=[u[0] for u in UNARY])
def test_unary(name, fn, kind, shape):
    check(fn, (shape, kind))


BINARY_SHAPES = [(SCALAR, SCALAR), (ONE, (3,)), (COL, ROW), (MAT, SCALAR), (SCALAR, MAT), ((2, 1, 3), (4, 1))]
BINARY = [
    ("add", lambda a, b: a + b, "any", "any"),
    ("sub", lambda a, b: a - b, "any", "any"),
    ("mul", lambda a, b: a * b, "any", "any"),
    ("div", lambda a, b: a / b, "any", "pos"),
    ("pow", lambda a, b: a ** b, "pos", "any"),
    ("maximum", minigrad.maximum, "distinct", "distinct"),
    ("minimum", minigrad.minimum, "distinct", "distinct"),
    ("where", lambda a, b: minigrad.where(a > b, a, b * 2), "distinct", "distinct"),
    ("add_method", lambda a, b: a.add(b), "any", "any"),
    ("div_method", lambda a, b: a.div(b), "any", "pos"),
]


@pytest.mark.parametrize("shapes", BINARY_SHAPES, ids=str)
@pytest.mark.parametrize("name, fn, kind_a, kind_b", BINARY, ids=[b[0] for b in BINARY])
def test_binary_with_broadcasting(name, fn, kind_a, kind_b, shapes):
    if name in ("maximum", "minimum", "where"):
        # distinct values across both inputs: offset b so a and b never tie
        a, b = make(shapes[0], "distinct", 0), make(shapes[1], "distinct", 1)
        b = (b.detach() + 0.031).requires_grad_()
        assert minigrad.gradcheck(fn, (a, b))
        return
    check(fn, (shapes[0], kind_a), (shapes[1], kind_b))


def test_binary_with_python_scalar_on_each_side():
    check(lambda x: (x + 2) * 3 - 1 / (x * x + 1) + (2 - x) / 4, (MAT, "any"))


def test_masked_fill_with_broadcast_mask():
    mask = minigrad.tensor([[True], [False], [True]])
    check(lambda x: x.masked_fill(mask, 0.0), ((3, 4), "any"))


# -- reductions -----------------------------------------------------------------------------------
DIMS = [(None, False), (0, False), (-1, True), ((0, 2), False), ((-1, -3), True), (1, True)]
REDUCTIONS = [
    ("sum", lambda x, d, k: x.sum(d, keepdim=k), "any"),
    ("sum_fn", lambda x, d, k: minigrad.sum(x, dim=d, keepdim=k), "any"),
    ("mean", lambda x, d, k: x.mean(d, keepdim=k), "any"),
    ("var", lambda x, d, k: x.var(d, keepdim=k), "any"),
    ("var_biased", lambda x, d, k: minigrad.var(x, d, keepdim=k, correction=0), "any"),
    ("std", lambda x, d, k: x.std(d, keepdim=k), "any"),
    ("amax", lambda x, d, k: x.amax(d, keepdim=k), "distinct"),
    ("amin", lambda x, d, k: minigrad.amin(x, d, keepdim=k), "distinct"),
    ("logsumexp", lambda x, d, k: x.logsumexp(d if d is not None else (0, 1, 2), keepdim=k), "any"),
]


@pytest.mark.parametrize("dim, keepdim", DIMS, ids=str)
@pytest.mark.parametrize("name, fn, kind", REDUCTIONS, ids=[r[0] for r in REDUCTIONS])
def test_reduction(name, fn, kind, dim, keepdim):
    check(lambda x: fn(x, dim, keepdim), ((2, 3, 4), kind))


@pytest.mark.parametrize("dim", [0, -1, 1])
@pytest.mark.parametrize("keepdim", [False, True])
def test_max_min_with_dim_return_values_and_indices(dim, keepdim):
    check(lambda x: x.max(dim, keepdim=keepdim).values * 2 + x.min(dim, keepdim=keepdim)[0], ((2, 3, 4), "distinct"))


def test_reductions_of_a_scalar():
    check(lambda x: x.sum() + x.mean() * 2 + x.amax() + x.logsumexp(0) + x.max(), ((), "any"))


def test_amax_ties_share_the_gradient():
    x = minigrad.tensor([1.0, 3.0, 3.0], dtype=minigrad.float64, requires_grad=True)
    x.amax().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.0, 0.5, 0.5])


# -- matmul ------------------------------------------------------------------------------------
MATMUL_SHAPES = [((3,), (3,)), ((3,), (3, 4)), ((2, 3), (3,)), ((2, 3), (3, 4)), ((5, 2, 3), (3, 4)),
                 ((2, 3), (5, 3, 4)), ((5, 2, 3), (5, 3, 4)), ((2, 1, 2, 3), (4, 3, 2)), ((3,), (2, 3, 4)),
                 ((2, 2, 3), (3,))]


@pytest.mark.parametrize("shape_a, shape_b", MATMUL_SHAPES, ids=str)
def test_matmul(shape_a, shape_b):
    check(lambda a, b: a @ b, (shape_a, "any"), (shape_b, "any"))


def test_matmul_method_and_function_agree():
    check(lambda a, b: a.matmul(b) + minigrad.matmul(a, b), ((2, 3), "any"), ((3, 2), "any"))


# -- shape ops -----------------------------------------------------------------------------------
SHAPE_OPS = [
    ("reshape", lambda x: x.reshape(4, 6)),
    ("reshape_minus1", lambda x: x.reshape(-1, 3)),
    ("view", lambda x: x.view(2, 12)),
    ("reshape_fn", lambda x: minigrad.reshape(x, (24,))),
    ("transpose", lambda x: x.transpose(0, -1)),
    ("swapaxes", lambda x: minigrad.swapaxes(x, 1, 2)),
    ("permute", lambda x: x.permute(2, 0, 1)),
    ("permute_negative", lambda x: x.permute(-1, -3, -2)),
    ("T", lambda x: x.T),
    ("mT", lambda x: x.mT),
    ("movedim", lambda x: x.movedim(0, -1)),
    ("expand", lambda x: x[:1].expand(2, 5, 3, 4)),
    ("expand_minus1", lambda x: x[:, :1].expand(-1, 3, -1)),
    ("broadcast_to", lambda x: minigrad.broadcast_to(x[:1], (3, 2, 3, 4))),
    ("squeeze", lambda x: x[:, :1].squeeze()),
    ("squeeze_dim", lambda x: x[:, :1].squeeze(-2)),
    ("unsqueeze", lambda x: x.unsqueeze(1)),
    ("unsqueeze_negative", lambda x: x.unsqueeze(-1)),
    ("flatten", lambda x: x.flatten()),
    ("flatten_range", lambda x: x.flatten(1, -1)),
    ("cat", lambda x: minigrad.cat([x, x * 2, x[:, :1]], dim=1)),
    ("cat_negative", lambda x: minigrad.cat([x, x.exp()], dim=-1)),
    ("stack", lambda x: minigrad.stack([x, x * x], dim=1)),
    ("stack_negative", lambda x: minigrad.stack([x, -x], dim=-1)),
    ("split", lambda x: x.split(1, dim=1)[2] * x.split([1, 2], dim=1)[1][:, :1]),
    ("chunk", lambda x: minigrad.chunk(x, 3, dim=-1)[1] * 3 + x.chunk(2)[0][..., :2]),
    ("repeat", lambda x: x.repeat(2, 1, 1, 2)),
]


@pytest.mark.parametrize("name, fn", SHAPE_OPS, ids=[s[0] for s in SHAPE_OPS])
def test_shape_op(name, fn):
    check(fn, ((2, 3, 4), "any"))


# -- indexing ------------------------------------------------------------------------------------
INDICES = [
    ("int", lambda x: x[1]),
    ("negative_int", lambda x: x[-1, 2]),
    ("slice", lambda x: x[1:, :2]),
    ("negative_step", lambda x: x[::-1, ::-2]),
    ("none", lambda x: x[None, :, None]),
    ("ellipsis", lambda x: x[..., 1]),
    ("int_array_repeats", lambda x: x[[0, 2, 2, 0]]),
    ("tensor_index_repeats", lambda x: x[minigrad.tensor([[1, 1], [3, 0]]), 1:]),
    ("two_int_arrays", lambda x: x[[0, 0, 3], [1, 1, 2]]),
    ("bool_mask", lambda x: x[x > 0]),
    ("bool_rows", lambda x: x[minigrad.tensor([True, False, True, True])]),
    ("mixed_slice_array", lambda x: x[1:3, [2, 0, 2]]),
    ("bool_and_int_array_repeats", lambda x: x[minigrad.tensor([False, True, False, False]), [1, 1, 2]]),
]


@pytest.mark.parametrize("name, fn", INDICES, ids=[i[0] for i in INDICES])
def test_getitem(name, fn):
    check(fn, ((4, 3), "away"))


def test_getitem_repeated_indices_scatter_add():
    x = minigrad.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x[[0, 0, 2, 0]].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 0.0, 1.0])


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_gather(dim):
    index = minigrad.tensor(np.random.default_rng(0).integers(0, 3, (3, 3)))
    check(lambda x: x.gather(dim, index), ((3, 3), "any"))


def test_clamp_with_tensor_bounds():
    """Gradients to x and to both bounds (broadcast (1, 4) against (3, 4)), away from the kinks."""
    rng = np.random.default_rng(3)
    low = rng.uniform(-1.0, -0.3, (1, 4)) + np.array([0.0, 0.0, 2.0, 0.0])  # column 2: min above x
    high = rng.uniform(0.3, 1.0, (3, 4))
    x = rng.uniform(-1.5, 1.5, (3, 4))
    x[np.abs(x - low) < 0.1] += 0.25
    x[np.abs(x - high) < 0.1] += 0.25
    inputs = [minigrad.tensor(a, dtype=minigrad.float64, requires_grad=True) for a in (x, low, high)]
    assert minigrad.gradcheck(lambda x, low, high: minigrad.clamp(x, low, high), inputs)
    assert minigrad.gradcheck(lambda x, low: x.clamp(min=low), inputs[:2])


@pytest.mark.parametrize("dim, index_shape", [(1, (1, 2)), (0, (2, 1)), (1, (2, 5)), (0, (4, 2))])
def test_gather_with_an_index_smaller_than_the_input_on_the_other_dims(dim, index_shape):
    """torch's rule: the index reads the first rows/columns of x on dims other than `dim`."""
    index = minigrad.tensor(np.random.default_rng(1).integers(0, (3, 4)[dim], index_shape))
    check(lambda x: x.gather(dim, index), ((3, 4), "any"), second_order=True)


# -- fused ops -----------------------------------------------------------------------------------
@pytest.mark.parametrize("dim", [0, -1, 1])
@pytest.mark.parametrize("op", [minigrad.softmax, minigrad.log_softmax, F.softmax, F.log_softmax])
def test_softmax_family(op, dim):
    check(lambda x: op(x, dim), ((2, 3, 4), "any"))


def test_softmax_with_masked_entries():
    mask = minigrad.tensor([[False, True, False, True], [True, True, True, False]])
    check(lambda x: x.masked_fill(mask, float("-inf")).softmax(-1), ((2, 4), "any"))
    check(lambda x: x.masked_fill(mask, float("-inf")).log_softmax(-1).masked_fill(mask, 0.0), ((2, 4), "any"))


def test_linear():
    check(lambda x, w, b: F.linear(x, w, b), ((2, 3, 4), "any"), ((5, 4), "any"), ((5,), "any"))
    check(lambda x, w: F.linear(x, w), ((4,), "any"), ((5, 4), "any"))


@pytest.mark.parametrize("normalized_shape", [(4,), (3, 4)])
def test_layer_norm(normalized_shape):
    check(lambda x, w, b: F.layer_norm(x, normalized_shape, w, b), ((2, 3, 4), "any"),
          (normalized_shape, "any"), (normalized_shape, "any"))
    check(lambda x: F.layer_norm(x, normalized_shape), ((2, 3, 4), "any"))


def test_dropout_with_a_fixed_mask():
    def fn(x):
        minigrad.manual_seed(7)  # the same mask on every call
        return F.dropout(x, p=0.4, training=True)

    check(fn, ((3, 5), "any"))


def test_embedding_with_repeated_and_padding_ids():
    ids = minigrad.tensor([[1, 4, 1], [0, 1, 2]])
    check(lambda w: F.embedding(ids, w), ((5, 3), "any"))
    # padding_idx is not a derivative (the padding row is frozen on purpose): compare with the plain gradient
    w = make((5, 3))
    v = minigrad.tensor(np.random.default_rng(1).standard_normal((2, 3, 3)))
    (plain,) = minigrad.grad((F.embedding(ids, w) * v).sum(), w)
    (padded,) = minigrad.grad((F.embedding(ids, w, padding_idx=1) * v).sum(), w)
    expected = plain.numpy().copy()
    expected[1] = 0.0
    np.testing.assert_array_equal(padded.numpy(), expected)


CE_CASES = [
    dict(),
    dict(label_smoothing=0.1),
    dict(ignore_index=2),
    dict(ignore_index=2, label_smoothing=0.2),
    dict(reduction="sum", label_smoothing=0.3),
    dict(reduction="none", ignore_index=0),
]


@pytest.mark.parametrize("kwargs", CE_CASES, ids=str)
def test_cross_entropy(kwargs):
    target = minigrad.tensor([0, 2, 4, 2])
    check(lambda x: F.cross_entropy(x, target, **kwargs), ((4, 5), "any"))
    target_3d = minigrad.tensor([[0, 2, 1], [2, 2, 0]])
    check(lambda x: F.cross_entropy(x, target_3d, **kwargs), ((2, 3, 3), "any"))


def test_nll_and_mse_losses():
    target = minigrad.tensor([0, 2, 1])
    check(lambda x: F.nll_loss(x.log_softmax(-1), target, ignore_index=1), ((3, 4), "any"))
    check(lambda x, y: F.mse_loss(x, y), ((3, 4), "any"), ((3, 4), "any"))


def test_cast_passes_the_gradient_back_in_the_input_dtype():
    x = make(MAT)
    (x.float() * 3).sum().backward()
    assert x.grad.dtype == minigrad.float64
    np.testing.assert_array_equal(x.grad.numpy(), np.full(MAT, 3.0))


# -- second order ----------------------------------------------------------------------------------
TWICE = [
    ("mul_div", lambda a, b: a * b / (b * b + 1), [(COL, "any"), (ROW, "any")]),
    ("pow", lambda a, b: a ** b, [(MAT, "pos"), (MAT, "any")]),
    ("exp_log_sqrt", lambda x: (x.exp() + x.log() + x.sqrt()) * x, [(MAT, "pos")]),
    ("tanh", lambda x: x.tanh(), [(MAT, "any")]),
    # 0-d: NumPy hands back scalars, not arrays; saved outputs must still join the graph
    ("scalar_chain", lambda x: x.tanh() * x.exp() + x.sigmoid() * x.sqrt() + x.abs() * x, [(SCALAR, "pos")]),
    ("sigmoid", lambda x: x.sigmoid(), [(MAT, "any")]),
    ("gelu", lambda x: minigrad.gelu(x), [(MAT, "any")]),
    ("gelu_tanh", lambda x: minigrad.gelu(x, approximate="tanh"), [(MAT, "any")]),
    ("relu_times_x", lambda x: minigrad.relu(x) * x, [(MAT, "away")]),
    ("softmax", lambda x: x.softmax(-1), [((2, 4), "any")]),
    ("log_softmax", lambda x: x.log_softmax(0), [((3, 4), "any")]),
    ("logsumexp", lambda x: x.logsumexp(-1), [((3, 4), "any")]),
    ("var_std", lambda x: x.var(1) * x.std(0, keepdim=True).T, [((3, 4), "any")]),
    ("matmul_chain", lambda a, b, c: ((a @ b).tanh() @ c), [((2, 3), "any"), ((3, 4), "any"), ((4, 2), "any")]),
    ("batched_matmul", lambda a, b: a @ b, [((2, 2, 3), "any"), ((3, 2), "any")]),
    ("matmul_vectors", lambda a, b: (a @ b) * (a @ b), [((3,), "any"), ((3,), "any")]),
    ("linear", lambda x, w, b: F.linear(x, w, b).tanh(), [((2, 3), "any"), ((4, 3), "any"), ((4,), "any")]),
    ("layer_norm", lambda x, w, b: F.layer_norm(x, (4,), w, b), [((2, 4), "any"), ((4,), "any"), ((4,), "any")]),
    ("cross_entropy", lambda x: F.cross_entropy(x, minigrad.tensor([0, 2, 1]), label_smoothing=0.1),
     [((3, 4), "any")]),
    ("cross_entropy_ignore", lambda x: F.cross_entropy(x, minigrad.tensor([0, 2, 1]), ignore_index=2),
     [((3, 4), "any")]),
    ("embedding", lambda w: F.embedding(minigrad.tensor([0, 2, 2]), w) ** 2, [((3, 2), "any")]),
    ("getitem_gather", lambda x: x[[0, 0, 1]] * x.gather(1, minigrad.tensor([[1, 1], [0, 2], [2, 2]])).sum(),
     [((3, 3), "any")]),
    ("cat_stack_shapes", lambda x: minigrad.cat([x, x.T.reshape(x.shape) ** 2], 0).sum(0)
     * minigrad.stack([x, x], -1).sum(-1).sum(0), [((3, 3), "any")]),
    ("maximum_abs_clip", lambda x, y: minigrad.maximum(x, y) * x.abs() * x.clip(-1, 1), [(MAT, "away"),
                                                                                         (MAT, "away")]),
    ("amax_max", lambda x: x.amax(1) * x.max(0).values.sum(), [((3, 3), "distinct")]),
    ("masked_softmax", lambda x: x.masked_fill(minigrad.tensor([[True, False, False]]), float("-inf")).softmax(-1)
     * x, [((2, 3), "any")]),
]


@pytest.mark.parametrize("name, fn, specs", TWICE, ids=[t[0] for t in TWICE])
def test_second_order(name, fn, specs):
    check(fn, *specs, second_order=True)
