"""The ops of issue 14 ("PyTorch habits carry over"): gradients against finite differences in
float64, values against NumPy, and the PyTorch semantics that NumPy does not share (stable
descending sorts, copies where NumPy gives views, in-place versions, zeros in products).

The comparisons with PyTorch itself are in test_ops_torch_habits_torch.py (skipped without torch).
"""
import math

import numpy as np
import pytest

import minigrad
from test_ops_gradcheck import check, make

SHAPE = (2, 3, 4)


def _index(values):
    return minigrad.tensor(values)


# -- first derivatives ------------------------------------------------------------------------------
# (id, fn, kind) on a (2, 3, 4) input
UNARY = [
    ("flip", lambda x: x.flip(0), "any"),
    ("flip_two_negative_dims", lambda x: x.flip(-1, 0), "any"),
    ("flip_fn", lambda x: minigrad.flip(x, (1,)), "any"),
    ("roll", lambda x: x.roll(1, 0), "any"),
    ("roll_two_dims", lambda x: minigrad.roll(x, (1, -2), (0, -1)), "any"),
    ("roll_flattened", lambda x: x.roll(5), "any"),
    ("tril", lambda x: x.tril(), "any"),
    ("triu_above", lambda x: minigrad.triu(x, diagonal=1), "any"),
    ("tril_below", lambda x: minigrad.tril(x, -1), "any"),
    ("index_select", lambda x: x.index_select(1, _index([2, 0, 2])), "any"),
    ("index_select_negative_dim", lambda x: minigrad.index_select(x, -1, _index([3, 3, 1, 0, 1])), "any"),
    ("index_select_0d_index", lambda x: x.index_select(0, _index(1)), "any"),
    ("repeat_interleave", lambda x: x.repeat_interleave(2, dim=1), "any"),
    ("repeat_interleave_flat", lambda x: minigrad.repeat_interleave(x, 3), "any"),
    ("repeat_interleave_counts", lambda x: x.repeat_interleave(_index([2, 0, 3]), dim=-2), "any"),
    ("scatter", lambda x: x.scatter(1, _index([[[2, 0, 1, 1]], [[0, 0, 2, 1]]]), 0.5), "any"),
    ("narrow", lambda x: x.narrow(-1, 1, 2), "any"),
    ("narrow_negative_start", lambda x: minigrad.narrow(x, 1, -2, 2), "any"),
    ("unbind", lambda x: x.unbind(1)[0] * x.unbind(-1)[3].sum() + minigrad.unbind(x)[1][2], "any"),
    ("masked_select", lambda x: x.masked_select(x > 0.2), "any"),
    ("masked_select_broadcast_mask", lambda x: minigrad.masked_select(x, _index([True, False, True, True])), "any"),
    ("where_method", lambda x: x.where(x > 0, x * x), "away"),
    ("where_method_scalar", lambda x: x.where(x < 0.3, 2.0), "away"),
    ("sin", lambda x: x.sin(), "any"),
    ("cos", lambda x: minigrad.cos(x), "any"),
    ("log1p", lambda x: minigrad.log1p(x), "pos"),
    ("expm1", lambda x: x.expm1(), "any"),
    ("sort", lambda x: x.sort().values, "distinct"),
    ("sort_descending_dim0", lambda x: minigrad.sort(x, 0, descending=True)[0], "distinct"),
    ("topk", lambda x: x.topk(2).values, "distinct"),
    ("topk_smallest_dim1", lambda x: minigrad.topk(x, 2, dim=1, largest=False).values, "distinct"),
    ("cumsum", lambda x: x.cumsum(0), "any"),
    ("cumsum_negative_dim", lambda x: minigrad.cumsum(x, -1), "any"),
    ("cumprod", lambda x: x.cumprod(-1), "any"),
    ("cumprod_dim1", lambda x: minigrad.cumprod(x, 1), "any"),
    ("prod_all", lambda x: x.prod(), "any"),
    ("prod_dim", lambda x: x.prod(1), "any"),
    ("prod_negative_dim_keepdim", lambda x: minigrad.prod(x, -1, keepdim=True), "any"),
    ("norm", lambda x: x.norm(), "any"),
    ("norm_fro_two_dims", lambda x: minigrad.norm(x, "fro", dim=(0, 2)), "any"),
    ("norm_2_keepdim", lambda x: x.norm(2, dim=-1, keepdim=True), "any"),
    ("norm_1", lambda x: x.norm(1, dim=1), "away"),
    ("norm_inf", lambda x: x.norm(math.inf, dim=0), "distinct"),
    ("norm_minus_inf", lambda x: minigrad.norm(x, -math.inf), "distinct"),
    ("norm_3", lambda x: x.norm(3, dim=(0, -1)), "any"),
    ("norm_half", lambda x: x.norm(0.5, dim=-1), "away"),
]


@pytest.mark.parametrize("name, fn, kind", UNARY, ids=[u[0] for u in UNARY])
def test_gradient(name, fn, kind):
    check(fn, (SHAPE, kind))


@pytest.mark.parametrize("name, fn, kind", [u for u in UNARY if u[0] in ("sin", "cos", "log1p", "expm1", "cumsum")])
@pytest.mark.parametrize("shape", [(), (1,)], ids=str)
def test_gradient_of_small_shapes(name, fn, kind, shape):
    check(fn, (shape, kind))


def test_sort_topk_prod_of_a_0d_tensor():
    check(lambda x: x.sort().values * 2 + x.topk(1).values + x.prod() + x.prod(0) + x.cumprod(0), ((), "any"))


BINARY = [
    ("scatter_src", lambda x, s: x.scatter(0, _index([[1, 0, 0], [0, 1, 1]]), s), (2, 3), (2, 3)),
    ("scatter_larger_src", lambda x, s: minigrad.scatter(x, -1, _index([[2, 0], [1, 2]]), s), (2, 3), (3, 4)),
    ("scatter_add_repeats", lambda x, s: x.scatter_add(1, _index([[0, 0, 2, 0], [1, 1, 1, 2]]), s), (2, 3), (2, 4)),
    ("scatter_add_fn", lambda x, s: minigrad.scatter_add(x, 0, _index([[1, 1, 0]]), s), (2, 3), (2, 3)),
    ("mm", lambda a, b: a.mm(b), (2, 3), (3, 4)),
    ("bmm", lambda a, b: minigrad.bmm(a, b), (2, 3, 4), (2, 4, 5)),
    ("dot", lambda a, b: a.dot(b), (4,), (4,)),
    ("outer", lambda a, b: minigrad.outer(a, b), (3,), (4,)),
    ("where_method_tensor_other", lambda a, b: a.where(a > b, b), (2, 3), (3,)),
]


@pytest.mark.parametrize("name, fn, shape_a, shape_b", BINARY, ids=[b[0] for b in BINARY])
def test_gradient_of_two_inputs(name, fn, shape_a, shape_b):
    check(fn, (shape_a, "any"), (shape_b, "any"))


EINSUM = [
    ("bhqd,bhkd->bhqk", (2, 3, 4, 5), (2, 3, 6, 5)),
    ("bhqk,bhkd->bhqd", (2, 3, 4, 6), (2, 3, 6, 5)),
    ("bhqd,bhkd->bhqk", (2, 1, 4, 5), (1, 3, 6, 5)),  # batch letters broadcast
    ("bij,bjk->bik", (2, 3, 4), (2, 4, 5)),
    ("ij,jk->ik", (3, 4), (4, 5)),
    ("i,i->", (4,), (4,)),
    ("i,j->ij", (3,), (4,)),
    ("...ij,...jk->...ik", (2, 1, 3, 4), (5, 4, 2)),
    ("...ij,jk->...ik", (2, 3, 4), (4, 5)),
    ("bqd,kd->bqk", (2, 3, 4), (5, 4)),
    ("bi,bi->b", (3, 4), (3, 4)),
    ("bnd,bd->bn", (2, 3, 4), (2, 4)),
    ("ij,kj", (3, 4), (5, 4)),  # implicit output: ik
    ("ij,jk->ki", (3, 4), (4, 5)),
    ("ijk,ikl->jl", (2, 3, 4), (2, 4, 5)),  # batch letter summed away
    ("ij,kl->", (2, 3), (4, 5)),
    ("ij,jk->ik", (3, 1), (4, 5)),  # a contracted letter of size 1 on one side broadcasts
]


@pytest.mark.parametrize("equation, shape_a, shape_b", EINSUM, ids=[f"{e[0]}-{e[1]}-{e[2]}" for e in EINSUM])
def test_einsum_gradient(equation, shape_a, shape_b):
    check(lambda a, b: minigrad.einsum(equation, a, b), (shape_a, "any"), (shape_b, "any"))


@pytest.mark.parametrize("equation, shapes", [("ij->ji", [(3, 4)]), ("ij->", [(3, 4)]), ("bij->bj", [(2, 3, 4)]),
                                              ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]),
                                              ("i,ij,j->", [(3,), (3, 4), (4,)])], ids=str)
def test_einsum_gradient_with_one_or_three_operands(equation, shapes):
    check(lambda *xs: minigrad.einsum(equation, *xs), *[(shape, "any") for shape in shapes])


# -- second derivatives -----------------------------------------------------------------------------
TWICE = [
    ("flip_roll_triangles", lambda x: (x.flip(0).roll(1, -1).tril() * x.triu(-1)).sin(), [((3, 3), "any")]),
    ("sin_cos", lambda x: x.sin() * x.cos(), [((2, 3), "any")]),
    ("log1p_expm1", lambda x: x.log1p() * x.expm1(), [((2, 3), "pos")]),
    ("cumsum", lambda x: x.cumsum(1) * x, [((2, 3), "any")]),
    ("cumprod", lambda x: x.cumprod(-1), [((2, 4), "any")]),
    ("cumprod_dim0", lambda x: x.cumprod(0) * x, [((3, 2), "any")]),
    ("prod", lambda x: x.prod(1) + x.prod(), [((2, 4), "any")]),
    ("einsum", lambda a, b: minigrad.einsum("bij,bkj->bik", a, b) ** 2, [((2, 2, 3), "any"), ((2, 2, 3), "any")]),
    ("norm_2", lambda x: x.norm(dim=-1), [((2, 3), "any")]),
    ("norm_3", lambda x: x.norm(3), [((2, 3), "any")]),
    ("sort_topk", lambda x: x.sort(0).values * x.topk(2).values.sum(), [((3, 3), "distinct")]),
    ("scatter_index_select", lambda x, s: x.scatter(1, _index([[1, 0]]), s).index_select(1, _index([1, 1, 0])) * x,
     [((2, 3), "any"), ((1, 2), "any")]),
    ("masked_select", lambda x: x.masked_select(x > 0) ** 2, [((3, 3), "any")]),
    ("outer_dot_mm_bmm", lambda a, b: minigrad.outer(a, b).mm(minigrad.outer(b, a)).sum() * a.dot(a) +
     minigrad.bmm(minigrad.outer(a, a)[None], minigrad.outer(a, b)[None]).sum() ** 2, [((3,), "any"), ((3,), "any")]),
]


@pytest.mark.parametrize("name, fn, specs", TWICE, ids=[t[0] for t in TWICE])
def test_second_order(name, fn, specs):
    check(fn, *specs, second_order=True)


# -- zeros in products ---------------------------------------------------------------------------
def _with_zeros(values):
    """A float64 leaf that requires grad, with exact zeros where `values` has them."""
    return minigrad.tensor(np.asarray(values, dtype=np.float64), requires_grad=True)


ZERO_ROWS = [
    [[0.0, 1.5, -2.0, 0.7]],  # zero first
    [[1.2, -0.8, 0.0, 1.1]],  # zero in the middle
    [[1.3, 0.9, -1.4, 0.0]],  # zero last
    [[0.6, 0.0, 1.7, 0.0], [0.0, 0.0, 1.0, 2.0]],  # two zeros in a row, adjacent zeros
    [[0.0, 0.0, 0.0, 0.0]],
]


def _cumprod_grad_by_brute_force(x, upstream):
    """sum over i >= k of upstream_i * prod_{j <= i, j != k} x_j, row by row (rows are the last dim)."""
    grad = np.zeros_like(x)
    for row in np.ndindex(*x.shape[:-1]):
        for k in range(x.shape[-1]):
            for i in range(k, x.shape[-1]):
                grad[row + (k,)] += upstream[row + (i,)] * np.prod([x[row + (j,)] for j in range(i + 1) if j != k])
    return grad


@pytest.mark.parametrize("rows", ZERO_ROWS, ids=str)
def test_cumprod_gradient_with_zeros(rows):
    x = _with_zeros(rows)
    assert minigrad.gradcheck(lambda x: x.cumprod(-1), (x,))
    assert minigrad.gradgradcheck(lambda x: x.cumprod(-1), (x,))
    assert minigrad.gradcheck(lambda x: x.mT.cumprod(0), (x,))  # along another dim
    upstream = np.random.default_rng(0).standard_normal(x.shape)
    expected = _cumprod_grad_by_brute_force(x.detach().numpy(), upstream)
    y = x.cumprod(-1)
    (fast,) = minigrad.grad(y, x, minigrad.tensor(upstream), retain_graph=True)  # the O(n) backward
    (exact,) = minigrad.grad(y, x, minigrad.tensor(upstream), create_graph=True)  # the O(n^2) one
    np.testing.assert_allclose(fast.numpy(), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(exact.detach().numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("rows", ZERO_ROWS, ids=str)
def test_prod_gradient_with_zeros(rows):
    x = _with_zeros(rows)
    assert minigrad.gradcheck(lambda x: x.prod(-1), (x,))
    assert minigrad.gradgradcheck(lambda x: x.prod(-1, keepdim=True), (x,))
    assert minigrad.gradcheck(lambda x: x.prod(), (x,))
    x.prod(-1).sum().backward()
    values = x.detach().numpy()
    expected = [[np.prod(np.delete(row, k)) for k in range(len(row))] for row in values]
    np.testing.assert_array_equal(x.grad.numpy(), expected)


# -- values against NumPy -------------------------------------------------------------------------
def _data(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("equation, shapes", [
    ("bhqd,bhkd->bhqk", [(2, 3, 4, 5), (2, 3, 6, 5)]), ("...ij,...jk->...ik", [(2, 1, 3, 4), (5, 4, 2)]),
    ("i,i", [(4,), (4,)]), ("ij,jk,kl", [(2, 3), (3, 4), (4, 5)]), ("Ab,bC->CA", [(2, 3), (3, 4)]),
    ("...i,i->...", [(2, 3, 4), (4,)]), ("ba,ab", [(2, 3), (3, 2)]), ("...", [(2, 3)]), ("i->", [(0,)]),
    ("ij,jk->ik", [(3, 0), (0, 2)]), (" ij , jk -> ik ", [(2, 3), (3, 4)]),
], ids=str)
def test_einsum_values_match_numpy(equation, shapes):
    arrays = [_data(shape, seed) for seed, shape in enumerate(shapes)]
    ours = minigrad.einsum(equation, *[minigrad.tensor(a) for a in arrays])
    np.testing.assert_allclose(ours.numpy(), np.einsum(equation.replace(" ", ""), *arrays), rtol=1e-12, atol=1e-12)
    as_list = minigrad.einsum(equation, [minigrad.tensor(a) for a in arrays])
    np.testing.assert_array_equal(as_list.numpy(), ours.numpy())


def test_einsum_sums_the_dots_when_the_output_leaves_them_out_as_torch_does():
    """NumPy refuses "...j->j"; PyTorch sums over the "..." dims."""
    a, b = _data((2, 3, 4)), _data((2, 4, 5), 1)
    np.testing.assert_allclose(minigrad.einsum("...j->j", minigrad.tensor(a)).numpy(), a.sum((0, 1)), rtol=1e-12)
    np.testing.assert_allclose(minigrad.einsum("...ij,...jk->ik", minigrad.tensor(a), minigrad.tensor(b)).numpy(),
                               np.einsum("...ij,...jk->...ik", a, b).sum(0), rtol=1e-12)


@pytest.mark.parametrize("call, message", [
    (lambda a: minigrad.einsum("ii->i", a), "repeats 'i'"),
    (lambda a: minigrad.einsum("ij->ii", a), "repeats 'i'"),
    (lambda a: minigrad.einsum(a, [0, 1]), "sublist"),
    (lambda a: minigrad.einsum("ij,jk->ik", a, a[:2]), "subscript 'j' has size 3 in one operand and 2"),
    (lambda a: minigrad.einsum("ijk->i", a), "for a tensor of 2 dims"),
    (lambda a: minigrad.einsum("ij,jk->ik", a), "names 2 operands, got 1"),
    (lambda a: minigrad.einsum("ij->iz", a), "'z' is in no operand"),
    (lambda a: minigrad.einsum("i1->i", a), "must be letters"),
    (lambda a: minigrad.einsum("...i...->i", a), "more than one '...'"),
], ids=["diagonal", "repeated_output", "sublist", "sizes", "ndim", "count", "unknown_output", "digit", "two_dots"])
def test_einsum_refuses_what_it_does_not_support_clearly(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call(minigrad.ones(3, 3))


def test_einsum_promotes_mixed_dtypes_like_matmul_operands_should():
    out = minigrad.einsum("i,i->", minigrad.ones(3), minigrad.ones(3, dtype=minigrad.float64))
    assert out.dtype == minigrad.float64 and out.item() == 3.0


def _vector_norm_by_definition(x, p, axes, keepdim):
    magnitude = np.abs(x)
    if p == math.inf:
        return magnitude.max(axis=axes, keepdims=keepdim)
    if p == -math.inf:
        return magnitude.min(axis=axes, keepdims=keepdim)
    if p == 0:
        return (magnitude != 0).sum(axis=axes, keepdims=keepdim).astype(x.dtype)
    return (magnitude ** p).sum(axis=axes, keepdims=keepdim) ** (1 / p)


@pytest.mark.parametrize("p", [1, 2, 3, 0.5, math.inf, -math.inf, 0, "fro", None])
@pytest.mark.parametrize("dim, keepdim", [(None, False), (-1, True), ((0, 2), False), (1, False)], ids=str)
def test_norm_values_match_the_definition(p, dim, keepdim):
    x = _data(SHAPE)
    x[0, 1, 2] = 0.0
    expected = _vector_norm_by_definition(x, 2 if p in ("fro", None) else p, dim, keepdim)
    ours = minigrad.norm(minigrad.tensor(x), p, dim, keepdim)
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-12)
    assert ours.dtype == minigrad.float64
    if p == 2 and dim is None:
        assert ours.item() == pytest.approx(np.linalg.norm(x.reshape(-1)), rel=1e-12)


def test_norm_gradient_at_zero_is_zero_not_nan():
    x = minigrad.zeros(2, 3, dtype=minigrad.float64, requires_grad=True)
    for p in (2, 3, 0.5, "fro"):
        (grad,) = minigrad.grad(x.norm(p, dim=-1).sum(), x)
        np.testing.assert_array_equal(grad.numpy(), np.zeros((2, 3)))
    one_zero = minigrad.tensor([0.0, 1.0, -2.0], dtype=minigrad.float64, requires_grad=True)
    for p in (0.5, 1.5, 3):
        (grad,) = minigrad.grad(one_zero.norm(p), one_zero)
        assert grad[0].item() == 0.0 and np.isfinite(grad.numpy()).all()
    (grad,) = minigrad.grad(x.norm(), x, create_graph=True)
    (second,) = minigrad.grad(grad.sum(), x)
    assert np.isfinite(second.numpy()).all()


def test_norm_refuses_matrix_norms_and_integers():
    with pytest.raises(NotImplementedError, match="'nuc'"):
        minigrad.ones(2, 2).norm("nuc")
    with pytest.raises(ValueError, match="at most two dims"):
        minigrad.ones(2, 2, 2).norm("fro", dim=(0, 1, 2))
    with pytest.raises(TypeError, match="floating-point"):
        minigrad.arange(3).norm()
    assert minigrad.arange(4).norm(dtype=minigrad.float64).item() == pytest.approx(math.sqrt(14))


def test_sort_is_stable_and_puts_nan_where_torch_does():
    values = [2.0, float("nan"), 1.0, 2.0, -1.0, 1.0, float("nan"), 2.0]
    x = minigrad.tensor(values)
    order = list(range(len(values)))
    key = lambda i: (math.isnan(values[i]), 0.0 if math.isnan(values[i]) else values[i])  # noqa: E731
    ascending = sorted(order, key=key)
    descending = sorted(order, key=lambda i: (not math.isnan(values[i]), 0.0 if math.isnan(values[i]) else -values[i]))
    assert x.sort().indices.tolist() == ascending
    assert x.argsort(descending=True).tolist() == descending
    assert minigrad.sort(x, descending=True).indices.tolist() == descending
    np.testing.assert_array_equal(x.sort(descending=True).values.numpy(), np.asarray(values)[descending])
    assert x.topk(3).indices.tolist() == descending[:3]
    assert x.topk(3, largest=False).indices.tolist() == ascending[:3]


def test_sort_and_topk_return_values_and_indices_without_gradient_on_indices():
    x = make((3, 5), "distinct")
    data = x.detach().numpy()
    for result, axis in ((x.sort(dim=0), 0), (x.topk(2, dim=-1), 1), (minigrad.topk(x, 1, dim=0, largest=False), 0)):
        values, indices = result
        assert result.values is values and result.indices is indices
        assert values.requires_grad and not indices.requires_grad and indices.dtype == minigrad.int64
        np.testing.assert_array_equal(values.detach().numpy(), np.take_along_axis(data, indices.numpy(), axis))
    np.testing.assert_array_equal(x.sort(dim=0).values.detach().numpy(), np.sort(data, axis=0))
    np.testing.assert_array_equal(x.topk(2, dim=-1).values.detach().numpy(), -np.sort(-data, axis=-1)[:, :2])
    np.testing.assert_array_equal(x.topk(1, dim=0, largest=False).values.detach().numpy(), data.min(0, keepdims=True))
    assert not x.argsort().requires_grad
    with pytest.raises(ValueError, match=r"topk: k = 6 is out of range for dimension -1 of size 5"):
        x.topk(6)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cumsum_cumprod_prod_values_and_integer_dtypes_match_numpy(dim):
    x = _data((3, 4))
    t = minigrad.tensor(x)
    np.testing.assert_allclose(t.cumsum(dim).numpy(), np.cumsum(x, axis=dim), rtol=1e-12)
    np.testing.assert_allclose(t.cumprod(dim).numpy(), np.cumprod(x, axis=dim), rtol=1e-12)
    np.testing.assert_allclose(t.prod(dim).numpy(), np.prod(x, axis=dim), rtol=1e-12)
    small = minigrad.tensor([[1, 2, 3], [4, 5, 6]], dtype=minigrad.int32)
    for result in (small.cumsum(dim), small.cumprod(dim), small.prod(dim), small.prod(), (small > 2).cumsum(dim)):
        assert result.dtype == minigrad.int64
    assert small.prod().item() == 720 and small.cumsum(dim, dtype=minigrad.float64).dtype == minigrad.float64


def test_flip_and_roll_values_match_numpy_and_flip_copies():
    x = _data(SHAPE)
    t = minigrad.tensor(x)
    np.testing.assert_array_equal(t.flip(0, 2).numpy(), np.flip(x, (0, 2)))
    np.testing.assert_array_equal(minigrad.flip(t, [-1]).numpy(), np.flip(x, -1))
    np.testing.assert_array_equal(t.flip([0, 1]).numpy(), t.flip(0, 1).numpy())
    np.testing.assert_array_equal(t.flip(-2).numpy(), np.flip(x, -2))
    np.testing.assert_array_equal(t.roll((1, 2), (0, 2)).numpy(), np.roll(x, (1, 2), (0, 2)))
    np.testing.assert_array_equal(t.roll(-7).numpy(), np.roll(x, -7))
    flipped = t.flip(0)
    flipped[0] = 100.0
    np.testing.assert_array_equal(t.numpy(), x)  # a copy, as torch.flip (NumPy's flip is a view)
    with pytest.raises(ValueError, match="same length"):
        t.roll((1, 2), 0)


def test_tril_triu_batched_on_bool_and_refused_below_2d():
    x = _data((2, 3, 4))
    t = minigrad.tensor(x)
    for k in (-1, 0, 2):
        np.testing.assert_array_equal(t.tril(k).numpy(), np.tril(x, k))
        np.testing.assert_array_equal(minigrad.triu(t, diagonal=k).numpy(), np.triu(x, k))
    causal = minigrad.ones(3, 3, dtype=minigrad.bool).triu(1)
    assert causal.dtype == minigrad.bool and causal.tolist() == [[False, True, True], [False, False, True],
                                                                 [False, False, False]]
    with pytest.raises(ValueError, match=r"tril: the input must have at least 2 dims, got shape \(3,\)"):
        minigrad.ones(3).tril()


# -- indexing, selecting, splitting -------------------------------------------------------------------
def test_index_select_and_repeat_interleave_match_numpy():
    x = _data((3, 4))
    t = minigrad.tensor(x)
    np.testing.assert_array_equal(t.index_select(1, _index([3, 0, 0])).numpy(), x[:, [3, 0, 0]])
    np.testing.assert_array_equal(t.repeat_interleave(2).numpy(), np.repeat(x, 2))
    np.testing.assert_array_equal(t.repeat_interleave(3, dim=0).numpy(), np.repeat(x, 3, axis=0))
    counts = [1, 0, 3, 2]
    np.testing.assert_array_equal(t.repeat_interleave(_index(counts), dim=1).numpy(), np.repeat(x, counts, axis=1))
    np.testing.assert_array_equal(t.repeat_interleave(_index(2), dim=0).numpy(), np.repeat(x, 2, axis=0))
    np.testing.assert_array_equal(t.repeat_interleave(_index(counts), dim=1, output_size=6).numpy(),
                                  np.repeat(x, counts, axis=1))
    assert minigrad.repeat_interleave(_index([2, 0, 1])).tolist() == [0, 0, 2]
    with pytest.raises(IndexError, match="index_select: index 4 is out of bounds"):
        t.index_select(1, _index([4]))
    with pytest.raises(ValueError, match="one count per element of dimension 1 \\(size 4\\)"):
        t.repeat_interleave(_index([1, 2]), dim=1)
    with pytest.raises(ValueError, match="non-negative"):
        t.repeat_interleave(_index([1, -1, 0, 0]), dim=1)


def _scatter_by_loops(x, dim, index, src, add):
    out = x.copy()
    for position in np.ndindex(*index.shape):
        target = list(position)
        target[dim] = index[position]
        value = src[position] if isinstance(src, np.ndarray) else src
        out[tuple(target)] = out[tuple(target)] + value if add else value
    return out


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_scatter_and_scatter_add_match_loops(dim):
    rng = np.random.default_rng(3)
    x, src = rng.standard_normal((3, 4)), rng.standard_normal((3, 5))
    axis = dim % 2
    # distinct ids along `dim` (a repeated id would let either write win): (2, 2) along dim 0, (3, 2) along dim 1
    index = np.stack([rng.permutation(x.shape[axis])[:2] for _ in range(2 if axis == 0 else 3)], axis=1 - axis)
    t, t_src, t_index = minigrad.tensor(x), minigrad.tensor(src), minigrad.tensor(index)
    np.testing.assert_array_equal(t.scatter(dim, t_index, t_src).numpy(), _scatter_by_loops(x, axis, index, src, False))
    np.testing.assert_array_equal(minigrad.scatter(t, dim, t_index, value=2.5).numpy(),
                                  _scatter_by_loops(x, axis, index, 2.5, False))
    repeated = np.zeros_like(index)
    np.testing.assert_allclose(t.scatter_add(dim, minigrad.tensor(repeated), t_src).numpy(),
                               _scatter_by_loops(x, axis, repeated, src, True), rtol=1e-12)
    assert t.scatter(dim, t_index, t_src) is not t and t.numpy().tolist() == x.tolist()  # out of place


def test_scatter_refuses_bad_arguments_with_the_op_and_shapes():
    x = minigrad.zeros(2, 3)
    index = _index([[0, 1, 1]])
    with pytest.raises(TypeError, match="scatter: src has dtype float64 but the input has float32"):
        x.scatter(0, index, minigrad.ones(1, 3, dtype=minigrad.float64))
    with pytest.raises(ValueError, match=r"scatter_add: index of shape \(1, 3\) must not be larger than src \(1, 2\)"):
        x.scatter_add(0, index, minigrad.ones(1, 2))
    with pytest.raises(ValueError, match=r"scatter: index of shape \(1, 4\) is larger than the input \(2, 3\)"):
        x.scatter(0, _index([[0, 0, 0, 0]]), 1.0)
    with pytest.raises(IndexError, match="scatter: index 2 is out of bounds"):
        x.scatter(0, _index([[0, 1, 2]]), 1.0)
    with pytest.raises(NotImplementedError, match="reduce"):
        x.scatter(1, index, 1.0, reduce="multiply")
    with pytest.raises(TypeError, match="scatter_add: src must be a tensor"):
        x.scatter_add(1, index, 1.0)


def test_scatter_with_repeated_ids_sends_each_src_the_gradient_of_its_target():
    x = minigrad.tensor([[1.0, 2.0, 3.0]], requires_grad=True)
    src = minigrad.tensor([[5.0, 6.0]], requires_grad=True)
    out = x.scatter(1, _index([[2, 2]]), src)
    out.backward(minigrad.tensor([[10.0, 20.0, 30.0]]))
    assert x.grad.tolist() == [[10.0, 20.0, 0.0]] and src.grad.tolist() == [[30.0, 30.0]]


def test_narrow_is_a_view_and_checks_its_range():
    x = minigrad.arange(12.0).reshape(3, 4)
    view = x.narrow(1, 1, 2)
    assert view.shape == (3, 2)
    view[0, 0] = -1.0
    assert x[0, 1].item() == -1.0 and x._version == view._version == 1
    assert x.narrow(0, -1, 1).tolist() == [[8.0, 9.0, 10.0, 11.0]] and x.narrow(1, 4, 0).shape == (3, 0)
    with pytest.raises(IndexError, match=r"narrow: start 3 \+ length 2 exceeds dimension 1 of size 4 \(shape \(3, 4"):
        x.narrow(1, 3, 2)
    with pytest.raises(IndexError, match="narrow: start -5 is out of range"):
        x.narrow(1, -5, 1)


def test_unbind_gives_views_along_the_dim():
    x = _data((2, 3))
    pieces = minigrad.tensor(x).unbind(1)
    assert len(pieces) == 3 and all(p.shape == (2,) for p in pieces)
    np.testing.assert_array_equal(np.stack([p.numpy() for p in pieces], 1), x)
    assert [p.tolist() for p in minigrad.unbind(minigrad.tensor(x))] == x.tolist()


def test_nonzero_and_masked_select_match_numpy():
    x = np.array([[0.0, 1.5, 0.0], [2.0, 0.0, -1.0]])
    t = minigrad.tensor(x, requires_grad=True)
    nonzero = t.nonzero()
    assert nonzero.dtype == minigrad.int64 and not nonzero.requires_grad
    np.testing.assert_array_equal(nonzero.numpy(), np.argwhere(x))
    as_tuple = minigrad.nonzero(t, as_tuple=True)
    assert len(as_tuple) == 2 and [a.tolist() for a in as_tuple] == [a.tolist() for a in np.nonzero(x)]
    np.testing.assert_array_equal(t[as_tuple].detach().numpy(), x[np.nonzero(x)])
    assert minigrad.tensor(3.0).nonzero().shape == (1, 0) and minigrad.tensor(0.0).nonzero().shape == (0, 0)
    assert [a.tolist() for a in minigrad.tensor(3.0).nonzero(as_tuple=True)] == [[0]]
    mask = minigrad.tensor([True, False, True])
    np.testing.assert_array_equal(t.masked_select(mask).detach().numpy(), x[:, [0, 2]].reshape(-1))
    with pytest.raises(ValueError, match=r"masked_select: shapes \(2, 3\) and \(2,\) cannot be broadcast"):
        t.masked_select(minigrad.tensor([True, False]))
    with pytest.raises(TypeError, match="masked_select: the mask must be a bool tensor"):
        t.masked_select(minigrad.tensor([1, 0, 1]))


def test_masked_fill_in_place_writes_bumps_the_version_and_is_seen_by_saved_tensors():
    w = minigrad.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x = minigrad.tensor([[1.0, -2.0, 3.0], [-4.0, 5.0, -6.0]])
    loss = (w * x).sum()  # Mul saved x
    assert x.masked_fill_(x < 0, 0.0) is x
    assert x.tolist() == [[1.0, 0.0, 3.0], [0.0, 5.0, 0.0]] and x._version == 1
    with pytest.raises(RuntimeError, match="modified in place"):
        loss.backward()
    x.masked_fill_(minigrad.tensor([True, False, False]), minigrad.tensor(7.0))  # a broadcast mask, a 0-d value
    assert x.tolist() == [[7.0, 0.0, 3.0], [7.0, 5.0, 0.0]] and x._version == 2
    with pytest.raises(RuntimeError, match="in-place"):
        w.masked_fill_(w > 1, 0.0)
    with pytest.raises(ValueError, match=r"masked_fill_: a mask of shape \(3, 2, 3\) does not broadcast"):
        x.masked_fill_(minigrad.ones(3, 2, 3, dtype=minigrad.bool), 0.0)
    with pytest.raises(TypeError, match="masked_fill_: the mask must be a bool tensor"):
        x.masked_fill_(minigrad.ones(2, 3), 0.0)


@pytest.mark.parametrize("call, message", [
    (lambda: minigrad.mm(minigrad.ones(2, 3), minigrad.ones(4, 2)), r"mm: expected two 2-D tensors that fit, got "
                                                                    r"shapes \(2, 3\) and \(4, 2\)"),
    (lambda: minigrad.mm(minigrad.ones(2, 3, 3), minigrad.ones(3, 2)), "mm: expected two 2-D"),
    (lambda: minigrad.bmm(minigrad.ones(2, 3, 4), minigrad.ones(3, 4, 5)), r"bmm: .*\(2, 3, 4\) and \(3, 4, 5\)"),
    (lambda: minigrad.bmm(minigrad.ones(3, 4), minigrad.ones(4, 5)), "bmm: expected two 3-D"),
    (lambda: minigrad.dot(minigrad.ones(3), minigrad.ones(4)), r"dot: .*\(3,\) and \(4,\)"),
    (lambda: minigrad.outer(minigrad.ones(3, 1), minigrad.ones(4)), r"outer: .*\(3, 1\) and \(4,\)"),
])
def test_products_refuse_shapes_that_torch_refuses(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# -- math and tests -------------------------------------------------------------------------------
def test_math_values_match_numpy_and_tests_find_nan_and_inf():
    x = _data((3, 4)) * 0.1
    t = minigrad.tensor(x)
    for ours, theirs in ((t.sin(), np.sin), (minigrad.cos(t), np.cos), (t.log1p(), np.log1p), (t.expm1(), np.expm1)):
        np.testing.assert_array_equal(ours.numpy(), theirs(x))
    tiny = minigrad.tensor(1e-20, dtype=minigrad.float64)  # 1 + x rounds to 1: log(1 + x) and exp(x) - 1 give 0
    assert tiny.log1p().item() == 1e-20 and minigrad.expm1(tiny).item() == 1e-20
    special = minigrad.tensor([1.0, float("nan"), float("inf"), -float("inf")])
    assert special.isnan().tolist() == [False, True, False, False]
    assert minigrad.isinf(special).tolist() == [False, False, True, True]
    assert special.isfinite().tolist() == [True, False, False, False]


def test_allclose_and_isclose_follow_torchs_rule():
    a = minigrad.tensor([1.0, 2.0, float("inf"), float("nan")])
    b = minigrad.tensor([1.0 + 1e-6, 2.0, float("inf"), float("nan")])
    assert a.isclose(b).tolist() == [True, True, True, False]
    assert minigrad.isclose(a, b, equal_nan=True).tolist() == [True, True, True, True]
    assert minigrad.allclose(a, b, equal_nan=True) is True and a.allclose(b) is False
    assert minigrad.allclose(minigrad.tensor([1.0, 100.0]), minigrad.tensor([1.0, 100.05]), rtol=1e-3)
    assert not minigrad.allclose(minigrad.tensor([0.0]), minigrad.tensor([1e-7]), atol=0.0)
    assert minigrad.allclose(minigrad.ones(2, 3), minigrad.ones(3))  # broadcasting
    with pytest.raises(TypeError, match="one dtype"):
        minigrad.allclose(minigrad.ones(2), minigrad.ones(2, dtype=minigrad.float64))
    with pytest.raises(ValueError, match="isclose: shapes"):
        minigrad.isclose(minigrad.ones(2), minigrad.ones(3))


# -- creation and sampling ----------------------------------------------------------------------------
def test_linspace_matches_numpy_in_the_default_dtype():
    for start, end, steps in ((0, 1, 5), (-2.5, 3, 7), (1, 1, 1), (0, 10, 0), (3, -3, 4)):
        ours = minigrad.linspace(start, end, steps)
        assert ours.dtype == minigrad.float32 and ours.shape == (steps,)
        np.testing.assert_allclose(ours.numpy(), np.linspace(start, end, steps), rtol=1e-6)
    assert minigrad.linspace(0, 1, 3, dtype=minigrad.float64).tolist() == [0.0, 0.5, 1.0]
    assert minigrad.linspace(0, 1, 3, requires_grad=True).requires_grad
    with pytest.raises(ValueError, match="steps"):
        minigrad.linspace(0, 1, -1)


def test_from_numpy_shares_memory_and_keeps_the_dtype():
    array = np.arange(6, dtype=np.int32).reshape(2, 3)
    t = minigrad.from_numpy(array)
    assert t.dtype == minigrad.int32 and t.device == "cpu" and t.shape == (2, 3)
    array[0, 0] = 100
    assert t[0, 0].item() == 100
    t[1, 2] = -1
    assert array[1, 2] == -1
    with pytest.raises(TypeError, match="expected a numpy.ndarray, got list"):
        minigrad.from_numpy([1, 2])
    with pytest.raises(TypeError, match="complex128"):
        minigrad.from_numpy(np.ones(2, dtype=complex))


def test_new_zeros_ones_full_take_dtype_and_device_from_the_tensor():
    x = minigrad.ones(2, dtype=minigrad.float64)
    for made, value in ((x.new_zeros(2, 3), 0.0), (x.new_zeros((2, 3)), 0.0), (x.new_ones([2, 3]), 1.0),
                        (x.new_full((2, 3), 7.0), 7.0)):
        assert made.shape == (2, 3) and made.dtype == minigrad.float64 and made.device == "cpu"
        assert (made.numpy() == value).all() and not made.requires_grad
    assert x.new_zeros(2, dtype=minigrad.int64).dtype == minigrad.int64
    assert x.new_ones(2, requires_grad=True).requires_grad
    assert minigrad.arange(3).new_full((2,), 4).dtype == minigrad.int64


def test_multinomial_is_reproducible_with_manual_seed():
    weights = minigrad.tensor([[0.1, 0.0, 0.5, 0.4], [1.0, 1.0, 1.0, 1.0]])
    for replacement in (False, True):
        minigrad.manual_seed(5)
        first = minigrad.multinomial(weights, 3, replacement=replacement)
        minigrad.manual_seed(5)
        again = weights.multinomial(3, replacement)
        assert first.dtype == minigrad.int64 and first.shape == (2, 3) and first.tolist() == again.tolist()
    assert minigrad.multinomial(minigrad.tensor([0.2, 0.8]), 1).shape == (1,)


def test_multinomial_with_replacement_draws_each_category_in_proportion_to_its_weight():
    weights = np.array([0.5, 0.0, 2.0, 1.5, 1.0])
    samples = minigrad.multinomial(minigrad.tensor(weights), 50000, replacement=True).numpy()
    frequencies = np.bincount(samples, minlength=5) / samples.size
    expected = weights / weights.sum()
    assert frequencies[1] == 0.0
    # five standard deviations of a binomial frequency
    np.testing.assert_array_less(np.abs(frequencies - expected), 5 * np.sqrt(expected * (1 - expected) / samples.size)
                                 + 1e-12)


def test_multinomial_without_replacement_is_sequential_sampling():
    """P(first = i, second = j) = w_i / W * w_j / (W - w_i), as drawing one after the other."""
    weights = np.array([1.0, 0.0, 2.0, 3.0])
    rows = 20000
    samples = minigrad.multinomial(minigrad.tensor(np.tile(weights, (rows, 1))), 3).numpy()
    assert (np.sort(samples, axis=1)[:, 1:] != np.sort(samples, axis=1)[:, :-1]).all()  # no repeats in a row
    assert not (samples == 1).any()  # weight 0 is never drawn while others remain
    total = weights.sum()
    for i in (0, 2, 3):
        for j in (0, 2, 3):
            if i == j:
                continue
            expected = weights[i] / total * weights[j] / (total - weights[i])
            observed = np.mean((samples[:, 0] == i) & (samples[:, 1] == j))
            assert abs(observed - expected) < 5 * math.sqrt(expected * (1 - expected) / rows)


@pytest.mark.parametrize("weights, samples, replacement, message", [
    ([0.5, -0.1], 1, True, "finite and non-negative"),
    ([0.5, float("nan")], 1, True, "finite and non-negative"),
    ([0.0, 0.0], 1, True, "sums to zero"),
    ([0.5, 0.5], 3, False, "cannot draw 3 samples from 2 categories without replacement"),
    ([0.5, 0.5], 0, True, "cannot draw 0 samples"),
])
def test_multinomial_refuses_bad_weights_on_the_cpu(weights, samples, replacement, message):
    with pytest.raises(ValueError, match=message):
        minigrad.multinomial(minigrad.tensor(weights), samples, replacement)


def test_multinomial_without_replacement_draws_weight_0_last_when_the_others_run_out():
    samples = minigrad.multinomial(minigrad.tensor([[0.5, 0.0, 0.5, 0.0]] * 50), 4).numpy()
    assert (np.sort(samples[:, :2], axis=1) == [0, 2]).all() and (samples[:, 2:] == [1, 3]).all()


def test_multinomial_refuses_generators_and_bad_shapes():
    with pytest.raises(TypeError, match="manual_seed"):
        minigrad.multinomial(minigrad.ones(3), 1, generator=object())
    with pytest.raises(ValueError, match="1-D or 2-D floating-point"):
        minigrad.multinomial(minigrad.ones(2, 2, 2), 1)
    with pytest.raises(ValueError, match="1-D or 2-D floating-point"):
        minigrad.multinomial(minigrad.tensor([1, 2]), 1)
