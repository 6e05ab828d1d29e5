"""The ops of issue 14 against PyTorch: forward values, dtypes and gradients of the same calls.

Each case is written once, `fn(L, *inputs)`, with `L.ops` minigrad or torch: the names,
signatures and defaults must be the same for it to run in both (see test_ops_torch.compare).
"""
import math

import numpy as np
import pytest

import minigrad
from test_ops_torch import MG, TORCH, compare, torch

SHAPE = (2, 3, 4)

UNARY = [
    ("flip", lambda L, x: L.ops.flip(x, (0, -1)), "any"),
    ("flip_method_varargs", lambda L, x: x.flip(1, 2), "any"),
    ("roll", lambda L, x: L.ops.roll(x, (1, -3), (0, 2)), "any"),
    ("roll_flattened", lambda L, x: x.roll(5), "any"),
    ("tril_triu", lambda L, x: (L.ops.tril(x), x.triu(1), x.tril(diagonal=-1), L.ops.triu(x, -2)), "any"),
    ("index_select", lambda L, x: x.index_select(-1, L.tensor([3, 0, 3, 1])), "any"),
    ("index_select_fn", lambda L, x: L.ops.index_select(x, 0, L.tensor([1, 1])), "any"),
    ("repeat_interleave", lambda L, x: (x.repeat_interleave(2, dim=1), L.ops.repeat_interleave(x, 2)), "any"),
    ("repeat_interleave_counts", lambda L, x: x.repeat_interleave(L.tensor([0, 2, 1]), dim=-2), "any"),
    ("repeat_interleave_output_size", lambda L, x: x.repeat_interleave(L.tensor([1, 3]), dim=0, output_size=4),
     "any"),
    ("scatter_value", lambda L, x: x.scatter(2, L.tensor([[[1, 3]], [[0, 2]]]), 0.5), "any"),
    ("narrow", lambda L, x: (x.narrow(-1, 1, 2), L.ops.narrow(x, 1, -2, 1)), "any"),
    ("unbind", lambda L, x: (*x.unbind(1), *L.ops.unbind(x, -1)), "any"),
    ("masked_select", lambda L, x: (x.masked_select(x > 0.1), L.ops.masked_select(x, L.tensor([True, False, False,
                                                                                              True]))), "any"),
    ("where_method", lambda L, x: (x.where(x > 0, x * 2), x.where(x < 0.5, 1.5)), "away"),
    ("sin_cos", lambda L, x: (x.sin(), L.ops.sin(x), x.cos(), L.ops.cos(x)), "any"),
    ("log1p", lambda L, x: (x.log1p(), L.ops.log1p(x)), "pos"),
    ("expm1", lambda L, x: (x.expm1(), L.ops.expm1(x)), "any"),
    ("sort", lambda L, x: (*x.sort(), *L.ops.sort(x, 0, descending=True), *x.sort(dim=1, stable=True)), "distinct"),
    ("argsort", lambda L, x: (x.argsort(), L.ops.argsort(x, dim=0, descending=True)), "distinct"),
    ("topk", lambda L, x: (*x.topk(2), *L.ops.topk(x, 3, dim=1, largest=False), *x.topk(1, 0, sorted=True)),
     "distinct"),
    ("cumsum", lambda L, x: (x.cumsum(0), L.ops.cumsum(x, dim=-1)), "any"),
    ("cumprod", lambda L, x: (x.cumprod(-1), L.ops.cumprod(x, 1)), "any"),
    ("prod", lambda L, x: (x.prod(), x.prod(1), L.ops.prod(x, -1, keepdim=True), L.ops.prod(x, 0)), "any"),
    ("norm_default", lambda L, x: (x.norm(), L.ops.norm(x), x.norm(dim=1)), "any"),
    ("norm_fro", lambda L, x: (x.norm("fro", dim=(0, 2)), L.ops.norm(x, "fro", dim=-1, keepdim=True)), "any"),
    ("norm_p", lambda L, x: (x.norm(1, dim=1), x.norm(3, dim=(0, -1)), L.ops.norm(x, 0.5, dim=-1, keepdim=True),
                             x.norm(2.5)), "away"),
    ("norm_inf", lambda L, x: (x.norm(math.inf, dim=0), L.ops.norm(x, -math.inf), x.norm(float("inf"))), "distinct"),
    ("norm_0", lambda L, x: L.ops.norm(x, 0, dim=1), "any"),
    ("isnan_isinf_isfinite", lambda L, x: (L.ops.log(x).isnan(), L.ops.isinf(1 / (x * 0)), (x / 0).isfinite(),
                                           L.ops.isnan(x)), "any"),
    ("nonzero", lambda L, x: (L.ops.nonzero(x > 0), *(x > 0.5).nonzero(as_tuple=True)), "any"),
]


@pytest.mark.parametrize("name, fn, kind", UNARY, ids=[u[0] for u in UNARY])
def test_unary(name, fn, kind):
    with np.errstate(divide="ignore", invalid="ignore"):
        compare(fn, SHAPE, kind=kind)


@pytest.mark.parametrize("shape", [(), (1,), (5,)], ids=str)
def test_small_shapes(shape):
    compare(lambda L, x: (x.sin(), x.cumsum(0), x.cumprod(-1), x.prod(), x.sort().values, x.flip(0), x.roll(1),
                          x.norm(), x.expm1(), x.topk(1).values), shape)


BINARY = [
    ("scatter", lambda L, x, s: x.scatter(1, L.tensor([[2, 0], [1, 2]]), s), (2, 3), (2, 2)),
    ("scatter_fn", lambda L, x, s: L.ops.scatter(x, 0, L.tensor([[1, 0, 1]]), s), (2, 3), (1, 3)),
    ("scatter_add", lambda L, x, s: x.scatter_add(1, L.tensor([[0, 0, 2, 0], [1, 1, 1, 2]]), s), (2, 3), (2, 4)),
    ("scatter_add_fn", lambda L, x, s: L.ops.scatter_add(x, 0, L.tensor([[1, 1, 0]]), s), (2, 3), (1, 3)),
    ("mm", lambda L, a, b: (a.mm(b), L.ops.mm(a, b)), (2, 3), (3, 4)),
    ("bmm", lambda L, a, b: (a.bmm(b), L.ops.bmm(a, b)), (2, 3, 4), (2, 4, 5)),
    ("dot", lambda L, a, b: (a.dot(b), L.ops.dot(a, b)), (4,), (4,)),
    ("outer", lambda L, a, b: (a.outer(b), L.ops.outer(a, b)), (3,), (4,)),
    ("where_method_other", lambda L, a, b: a.where(a > b, b), (2, 3), (3,)),
]


@pytest.mark.parametrize("name, fn, shape_a, shape_b", BINARY, ids=[b[0] for b in BINARY])
def test_binary(name, fn, shape_a, shape_b):
    compare(fn, shape_a, shape_b)


def test_scatter_with_a_larger_src_reads_its_first_elements_like_torch():
    """Values only: torch's backward for a src larger than the index fails (it returns the index's shape)."""
    compare(lambda L, x, s: (x.scatter(1, L.tensor([[2, 0], [1, 2]]), s),
                             L.ops.scatter_add(x, 0, L.tensor([[1, 1, 0]]), s)), (2, 3), (3, 4), grad=False)


EINSUM = [
    ("bhqd,bhkd->bhqk", (2, 3, 4, 5), (2, 3, 6, 5)),
    ("bhqk,bhkd->bhqd", (2, 3, 4, 6), (2, 3, 6, 5)),
    ("bhqd,bhkd->bhqk", (2, 1, 4, 5), (1, 3, 6, 5)),
    ("bij,bjk->bik", (2, 3, 4), (2, 4, 5)),
    ("ij,jk->ik", (3, 4), (4, 5)),
    ("i,i->", (4,), (4,)),
    ("i,j->ij", (3,), (4,)),
    ("...ij,...jk->...ik", (2, 1, 3, 4), (5, 4, 2)),
    ("...ij,...jk->ik", (2, 3, 4), (2, 4, 5)),
    ("bqd,kd->bqk", (2, 3, 4), (5, 4)),
    ("bi,bi->b", (3, 4), (3, 4)),
    ("ij,kj", (3, 4), (5, 4)),
    ("Ab,bC", (2, 3), (3, 4)),
    ("ijk,ikl->jl", (2, 3, 4), (2, 4, 5)),
    ("ij,jk->ik", (3, 1), (4, 5)),
]


@pytest.mark.parametrize("equation, shape_a, shape_b", EINSUM, ids=[f"{e[0]}-{e[1]}-{e[2]}" for e in EINSUM])
def test_einsum(equation, shape_a, shape_b):
    compare(lambda L, a, b: L.ops.einsum(equation, a, b), shape_a, shape_b)


@pytest.mark.parametrize("equation, shapes", [("ij->ji", [(3, 4)]), ("...j->j", [(2, 3, 4)]),
                                              ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)])], ids=str)
def test_einsum_with_one_or_three_operands(equation, shapes):
    compare(lambda L, *xs: (L.ops.einsum(equation, *xs), L.ops.einsum(equation, list(xs))), *shapes)


# -- zeros in products: values, gradients and second derivatives ---------------------------------------------
ZERO_ROWS = [[[0.0, 1.5, -2.0, 0.7], [1.2, -0.8, 0.0, 1.1]], [[1.3, 0.9, -1.4, 0.0], [0.6, 0.0, 1.7, 0.0]],
             [[0.0, 0.0, 1.0, 2.0], [0.0, 0.0, 0.0, 0.0]]]


def _gradients_with_zeros(lib, rows, fn, second_order):
    """d<fn(x), u>/dx, or with second_order d<that, w>/dx, for x with exact zeros."""
    grad = torch.autograd.grad if lib is torch else minigrad.grad
    x = lib.tensor(np.asarray(rows), dtype=lib.float64, requires_grad=True)
    upstream = lib.tensor(np.random.default_rng(0).standard_normal(tuple(fn(x).shape)))
    (first,) = grad(fn(x), x, upstream, create_graph=second_order)
    if not second_order:
        return first.detach().numpy()
    weights = lib.tensor(np.random.default_rng(1).standard_normal(tuple(first.shape)))
    (second,) = grad((first * weights).sum(), x)
    return second.numpy()


@pytest.mark.parametrize("second_order", [False, True])
@pytest.mark.parametrize("op", ["cumprod", "cumprod_dim0", "prod", "prod_all"])
@pytest.mark.parametrize("rows", ZERO_ROWS, ids=str)
def test_product_gradients_with_zeros_match_torch(rows, op, second_order):
    fn = {"cumprod": lambda x: x.cumprod(-1), "cumprod_dim0": lambda x: x.cumprod(0),
          "prod": lambda x: x.prod(1), "prod_all": lambda x: x.prod()}[op]
    ours = _gradients_with_zeros(minigrad, rows, fn, second_order)
    theirs = _gradients_with_zeros(torch, rows, fn, second_order)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)


# -- values, dtypes and errors ---------------------------------------------------------------------
def test_sort_ties_and_nan_like_torch_stable():
    values = [2.0, float("nan"), 1.0, 2.0, -1.0, 1.0, float("nan"), 2.0]
    for call in (lambda L, x: x.sort(stable=True).indices, lambda L, x: x.sort(descending=True, stable=True).indices,
                 lambda L, x: L.ops.argsort(x, stable=True), lambda L, x: x.topk(3).indices):
        ours, theirs = call(MG, minigrad.tensor(values)), call(TORCH, torch.tensor(values))
        assert ours.tolist() == theirs.tolist()


@pytest.mark.parametrize("dtype", ["int32", "int64", "bool"])
def test_accumulation_dtypes_match_torch(dtype):
    data = np.array([[1, 0, 3], [2, 2, 1]]).astype(dtype)
    for fn in (lambda L, x: x.cumsum(0), lambda L, x: x.cumprod(1), lambda L, x: x.prod(), lambda L, x: x.prod(1),
               lambda L, x: L.ops.cumsum(x, 1, dtype=L.ops.float64)):
        ours, theirs = fn(MG, minigrad.tensor(data)), fn(TORCH, torch.tensor(data))
        assert str(ours.dtype) == str(theirs.dtype).removeprefix("torch.")
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_nonzero_of_0d_and_allclose_isclose_like_torch():
    for value in (3.0, 0.0):
        ours, theirs = minigrad.tensor(value).nonzero(), torch.tensor(value).nonzero()
        assert ours.shape == tuple(theirs.shape)
        assert [t.tolist() for t in minigrad.tensor(value).nonzero(as_tuple=True)] == \
            [t.tolist() for t in torch.tensor(value).nonzero(as_tuple=True)]
    a = [1.0, 2.0, float("inf"), float("nan"), 100.0]
    b = [1.0 + 1e-6, 2.1, float("inf"), float("nan"), 100.05]
    for kwargs in ({}, dict(equal_nan=True), dict(rtol=1e-3), dict(atol=0.2, equal_nan=True)):
        assert minigrad.tensor(a).isclose(minigrad.tensor(b), **kwargs).tolist() == \
            torch.tensor(a).isclose(torch.tensor(b), **kwargs).tolist()
        assert minigrad.allclose(minigrad.tensor(a), minigrad.tensor(b), **kwargs) == \
            torch.allclose(torch.tensor(a), torch.tensor(b), **kwargs)


def test_linspace_from_numpy_and_new_tensors_like_torch():
    for args in ((0, 1, 5), (-2.5, 3, 7), (1, 1, 1), (0, 10, 0), (3, -3, 4)):
        ours, theirs = minigrad.linspace(*args), torch.linspace(*args)
        assert ours.dtype == minigrad.float32 and theirs.dtype == torch.float32
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(minigrad.linspace(0, 10, 3, dtype=minigrad.int64).numpy(),
                                  torch.linspace(0, 10, 3, dtype=torch.int64).numpy())
    for dtype in (np.float32, np.float64, np.int32, np.int64, np.bool_):
        array = np.ones((2, 3), dtype=dtype)
        assert str(minigrad.from_numpy(array).dtype) == str(torch.from_numpy(array).dtype).removeprefix("torch.")
    made = {}
    for lib in (minigrad, torch):
        x = lib.ones(2, dtype=lib.float64)
        made[lib] = [(str(m.dtype).removeprefix("torch."), tuple(m.shape), m.numpy().tolist())
                     for m in (x.new_zeros(2, 3), x.new_zeros((2, 3)), x.new_ones([3]), x.new_full((2,), 7.0),
                               x.new_zeros(2, dtype=lib.int64), lib.arange(3).new_full((2,), 4))]
    assert made[minigrad] == made[torch]


def test_multinomial_shapes_dtypes_and_refusals_like_torch():
    for weights, samples, replacement in (([0.2, 0.8, 0.0], 2, False), ([[1.0, 2.0], [3.0, 0.5]], 5, True),
                                          ([0.5, 0.0, 0.5], 3, False)):
        ours = minigrad.multinomial(minigrad.tensor(weights), samples, replacement)
        theirs = torch.multinomial(torch.tensor(weights), samples, replacement)
        assert ours.shape == tuple(theirs.shape) and str(ours.dtype) == str(theirs.dtype).removeprefix("torch.")
        if samples == len(weights):  # every category drawn once, the one of weight 0 after the others
            assert sorted(ours.tolist()) == sorted(theirs.tolist()) == [0, 1, 2] and ours[-1] == theirs[-1] == 1
    for weights, samples, replacement in (([0.5, -0.1], 1, True), ([0.0, 0.0], 1, True), ([0.5, 0.5], 0, True),
                                          ([0.5, float("nan")], 1, True), ([0.5, 0.5], 3, False)):
        with pytest.raises(RuntimeError):
            torch.multinomial(torch.tensor(weights), samples, replacement)
        with pytest.raises(ValueError):
            minigrad.multinomial(minigrad.tensor(weights), samples, replacement)


@pytest.mark.parametrize("call", [
    lambda L: L.ops.mm(L.ops.ones(2, 3), L.ops.ones(4, 2)),
    lambda L: L.ops.bmm(L.ops.ones(2, 3, 4), L.ops.ones(3, 4, 5)),
    lambda L: L.ops.dot(L.ops.ones(3), L.ops.ones(4)),
    lambda L: L.ops.outer(L.ops.ones(3, 1), L.ops.ones(4)),
    lambda L: L.ops.tril(L.ops.ones(3)),
    lambda L: L.ops.ones(3).narrow(0, 2, 2),
    lambda L: L.ops.ones(2, 3).topk(4),
    lambda L: L.ops.ones(2, 3).index_select(1, L.tensor([3])),
    lambda L: L.ops.zeros(2, 3).scatter(0, L.tensor([[0, 2]]), 1.0),
    lambda L: L.ops.einsum("ij,jk->ik", L.ops.ones(2, 3), L.ops.ones(2, 3)),
    lambda L: L.ops.ones(2, 3).masked_select(L.tensor([True, False])),
    lambda L: L.ops.ones(2, 3).masked_fill_(L.ops.ones(3, 2, 3).bool(), 0.0),
], ids=["mm", "bmm", "dot", "outer", "tril_1d", "narrow", "topk", "index_select", "scatter", "einsum",
        "masked_select", "masked_fill_"])
def test_what_torch_refuses_is_refused(call):
    with pytest.raises(Exception):
        call(TORCH)
    with pytest.raises((ValueError, IndexError, TypeError)):
        call(MG)


def test_masked_fill_in_place_like_torch():
    results = []
    for lib in (minigrad, torch):
        x = lib.tensor([[1.0, -2.0, 3.0], [-4.0, 5.0, -6.0]])
        version = x._version
        assert x.masked_fill_(x < 0, 0.5) is x
        x.masked_fill_(lib.tensor([True, False, False]), lib.tensor(7.0))
        results.append((x.tolist(), x._version - version))
    assert results[0] == results[1]
