"""Property tests: for any pair of broadcastable shapes, every binary op sends back gradients
of its operands' own shapes, equal to the broadcast gradient summed over the broadcast axes."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import minigrad


@st.composite
def broadcastable_shapes(draw):
    """Two shapes that broadcast: each dim of the shorter one is the other's size or 1."""
    ndim = draw(st.integers(0, 3))
    full = draw(st.lists(st.integers(1, 3), min_size=ndim, max_size=ndim))
    shapes = []
    for _ in range(2):
        lead = draw(st.integers(0, ndim))
        shapes.append(tuple(size if draw(st.booleans()) else 1 for size in full[lead:]))
    return shapes[0], shapes[1]


OPS = {
    "add": (lambda a, b: a + b, lambda a, b, g: (g, g)),
    "sub": (lambda a, b: a - b, lambda a, b, g: (g, -g)),
    "mul": (lambda a, b: a * b, lambda a, b, g: (g * b, g * a)),
    "div": (lambda a, b: a / b, lambda a, b, g: (g / b, -g * a / b ** 2)),
    "maximum": (minigrad.maximum, lambda a, b, g: (g * (a > b), g * (b > a))),
}


def _sum_to(array, shape):
    """NumPy reference for reducing a broadcast gradient back to `shape`."""
    lead = array.ndim - len(shape)
    array = array.sum(axis=tuple(range(lead)))
    axes = tuple(i for i, size in enumerate(shape) if size == 1 and array.shape[i] != 1)
    return array.sum(axis=axes, keepdims=True).reshape(shape)


@settings(max_examples=40, deadline=None)
@given(shapes=broadcastable_shapes(), op=st.sampled_from(sorted(OPS)), seed=st.integers(0, 2 ** 16))
def test_binary_op_gradients_reduce_over_broadcast_dims(shapes, op, seed):
    rng = np.random.default_rng(seed)
    a_np = rng.uniform(0.5, 2.0, shapes[0])
    b_np = rng.uniform(0.5, 2.0, shapes[1]) + 0.01  # never equal to a: maximum has no ties
    forward, reference = OPS[op]
    a = minigrad.tensor(a_np, dtype=minigrad.float64, requires_grad=True)
    b = minigrad.tensor(b_np, dtype=minigrad.float64, requires_grad=True)
    out = forward(a, b)
    out_shape = np.broadcast_shapes(shapes[0], shapes[1])
    assert out.shape == out_shape
    g = rng.standard_normal(out_shape)
    out.backward(minigrad.tensor(g, dtype=minigrad.float64))
    a_full, b_full = np.broadcast_to(a_np, out_shape), np.broadcast_to(b_np, out_shape)
    expected_a, expected_b = reference(a_full, b_full, g)
    assert a.grad.shape == shapes[0] and b.grad.shape == shapes[1]
    np.testing.assert_allclose(a.grad.numpy(), _sum_to(np.asarray(expected_a, dtype=float), shapes[0]), rtol=1e-12,
                               atol=1e-12)
    np.testing.assert_allclose(b.grad.numpy(), _sum_to(np.asarray(expected_b, dtype=float), shapes[1]), rtol=1e-12,
                               atol=1e-12)


@settings(max_examples=20, deadline=None)
@given(shapes=broadcastable_shapes(), seed=st.integers(0, 2 ** 16))
def test_where_and_masked_fill_gradients_under_broadcasting(shapes, seed):
    rng = np.random.default_rng(seed)
    x = minigrad.tensor(rng.standard_normal(shapes[0]), dtype=minigrad.float64, requires_grad=True)
    y = minigrad.tensor(rng.standard_normal(shapes[1]), dtype=minigrad.float64, requires_grad=True)
    mask = minigrad.tensor(rng.random(shapes[1]) > 0.5)
    assert minigrad.gradcheck(lambda a, b: minigrad.where(mask, a, b) * 2 + a.masked_fill(mask, 0.0), (x, y))


@settings(max_examples=20, deadline=None)
@given(shapes=broadcastable_shapes(), seed=st.integers(0, 2 ** 16))
def test_gradcheck_of_broadcast_expressions(shapes, seed):
    rng = np.random.default_rng(seed)
    x = minigrad.tensor(rng.uniform(0.5, 2.0, shapes[0]), dtype=minigrad.float64, requires_grad=True)
    y = minigrad.tensor(rng.uniform(0.5, 2.0, shapes[1]), dtype=minigrad.float64, requires_grad=True)
    assert minigrad.gradcheck(lambda a, b: (a * b + a / b - b ** a).tanh() * a, (x, y))
