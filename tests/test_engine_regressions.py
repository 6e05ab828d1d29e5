"""Regression tests for the backward pass: accumulation, reuse, deep graphs, numerics, memory, dtypes."""
import gc
import time
import tracemalloc

import numpy as np
import pytest

import minigrad
import minigrad.functional as F
from minigrad import Function


def leaf(values, dtype=minigrad.float32):
    return minigrad.tensor(values, dtype=dtype, requires_grad=True)


def count_function_nodes():
    """Live graph nodes (type() rather than isinstance: lazy module proxies must not be touched)."""
    return sum(issubclass(type(obj), Function) for obj in gc.get_objects())


def graph_nodes(tensor):
    """Every Function node reachable from `tensor` (iteratively, through `.edges`)."""
    seen, stack = set(), [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen or not isinstance(node, Function):
            continue
        seen.add(node)
        stack.extend(node.edges)
    return seen


# -- accumulation and reuse -------------------------------------------------------------------
def test_grads_accumulate_across_backward_calls():
    x = leaf([1.0, 2.0])
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3 + 2, 3 + 4])


def test_diamonds_x_times_x_and_a_plus_a():
    x = leaf([3.0])
    (x * x).backward(minigrad.ones(1))
    np.testing.assert_array_equal(x.grad.numpy(), [6.0])
    a = leaf([2.0])
    (a + a).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [2.0])


def test_reused_subexpression_and_broadcast_leaf():
    x = leaf([[1.0, 2.0], [3.0, 4.0]])
    b = leaf([10.0, 20.0])
    h = x * b  # b broadcast over rows
    loss = (h * h).sum() + h.sum() + (h.exp() * 0).sum()
    loss.backward()
    xv, bv = x.detach().numpy(), b.detach().numpy()
    hv = xv * bv
    np.testing.assert_allclose(x.grad.numpy(), (2 * hv + 1) * bv, rtol=1e-6)
    np.testing.assert_allclose(b.grad.numpy(), ((2 * hv + 1) * xv).sum(0), rtol=1e-6)


def test_leaf_grads_do_not_share_memory():
    """One gradient array reaching two leaves (Add passes it through) must be copied into each."""
    a, b = leaf([1.0]), leaf([2.0])
    (a + b).sum().backward()
    a.grad.data += 1  # an optimizer that updates in place
    np.testing.assert_array_equal(b.grad.numpy(), [1.0])


class DropsSecondGradient(Function):
    """a * b whose backward sends nothing to b (as a custom op may)."""

    def forward(self, a, b):
        self.save_for_backward(b)
        return a * b

    def backward(self, grad):
        (b,) = self.saved_tensors
        return grad * b, None


def test_a_branch_that_gets_no_gradient_does_not_block_the_rest():
    x = leaf([1.0, 2.0])
    a = leaf([5.0, 5.0])
    k = x * 3
    h = k * 2
    out = DropsSecondGradient.apply(a, h).sum() + k.sum()
    out.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])  # only through k.sum()
    np.testing.assert_array_equal(a.grad.numpy(), [6.0, 12.0])


# -- deep graphs ------------------------------------------------------------------------------
@pytest.mark.slow
def test_chain_of_100000_ops():
    x = leaf([1.0], dtype=minigrad.float64)
    y = x
    for _ in range(50_000):
        y = y * 1.00001
        y = y + 0.5
    start = time.perf_counter()
    y.sum().backward()
    elapsed = time.perf_counter() - start
    np.testing.assert_allclose(x.grad.numpy(), [1.00001 ** 50_000], rtol=1e-9)
    del y  # freeing a 100,000-deep graph must not overflow the C stack either
    gc.collect()
    assert elapsed < 30


# -- numerics ----------------------------------------------------------------------------------
def test_log_softmax_of_minus_1000_and_1_is_finite():
    x = leaf([-1000.0, 1.0])
    y = x.log_softmax(-1)
    np.testing.assert_allclose(y.detach().numpy(), [-1001.0, 0.0])
    (y * minigrad.tensor([1.0, 0.0])).sum().backward()
    assert np.isfinite(x.grad.numpy()).all()
    np.testing.assert_allclose(x.grad.numpy(), [1.0, -1.0], atol=1e-6)


def test_fully_masked_softmax_row_gives_zeros_and_zero_gradient():
    scores = leaf([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = minigrad.tensor([[False, True, False], [True, True, True]])
    weights = scores.masked_fill(mask, float("-inf")).softmax(-1)
    log_weights = scores.masked_fill(mask, float("-inf")).log_softmax(-1)
    np.testing.assert_array_equal(weights.detach().numpy()[1], [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(log_weights.detach().numpy()[1], [0.0, 0.0, 0.0])
    values = leaf([[1.0, 0.0], [0.0, 1.0], [2.0, 3.0]])
    ((weights @ values).sum() + log_weights.masked_fill(mask, 0.0).sum()).backward()
    assert np.isfinite(scores.grad.numpy()).all() and np.isfinite(values.grad.numpy()).all()
    np.testing.assert_array_equal(scores.grad.numpy()[1], [0.0, 0.0, 0.0])


@pytest.mark.parametrize("op", [minigrad.sigmoid, minigrad.tanh, minigrad.gelu,
                                lambda x: x.logsumexp(0), lambda x: x.softmax(0)])
def test_saturating_ops_at_plus_minus_1000(op):
    x = leaf([-1000.0, 1000.0])
    y = op(x)
    assert np.isfinite(y.detach().numpy()).all()
    y.sum().backward()
    assert np.isfinite(x.grad.numpy()).all()


def test_cross_entropy_with_label_smoothing_and_no_padding_in_the_batch():
    logits = leaf([[2.0, -1.0, 0.5], [0.1, 0.2, 3.0]])
    loss = F.cross_entropy(logits, minigrad.tensor([0, 2]), ignore_index=-100, label_smoothing=0.1)
    assert np.isfinite(loss.item())
    loss.backward()
    assert np.isfinite(logits.grad.numpy()).all()


# -- dtypes -----------------------------------------------------------------------------------
def _float_arrays_saved_by(node):
    for item in list(node._saved) + [node._output]:  # the output, when saved, is kept apart
        array = item.data if isinstance(item, minigrad.Tensor) else item  # saved inputs are Tensors
        if hasattr(array, "dtype") and array.dtype.kind == "f":
            yield type(node).__name__, array.dtype


def test_a_float32_model_stays_float32_everywhere():
    """Walk the whole graph of a small float32 model: no saved array and no gradient may be float64."""
    minigrad.manual_seed(0)
    w1, b1 = minigrad.randn(6, 4, requires_grad=True), minigrad.zeros(6, requires_grad=True)
    gamma, beta = minigrad.ones(6, requires_grad=True), minigrad.zeros(6, requires_grad=True)
    w2 = minigrad.randn(5, 6, requires_grad=True)
    table = minigrad.randn(10, 4, requires_grad=True)
    ids = minigrad.tensor([[1, 2, 3], [4, 4, 0]])
    target = minigrad.tensor([[1, 2, 0], [4, 3, 2]])

    x = F.embedding(ids, table) * 4 ** 0.5
    h = F.linear(x, w1, b1)
    h = F.layer_norm(h, (6,), gamma, beta)
    h = F.dropout(minigrad.gelu(h) + minigrad.relu(h) * 0.5, p=0.1)
    attention = (h @ h.mT / 6 ** 0.5).masked_fill(minigrad.tensor([[False, False, True]]), float("-inf")).softmax(-1)
    h = attention @ h + h.var(-1, keepdim=True).sqrt() + h.mean(-1, keepdim=True).tanh().sigmoid()
    logits = F.linear(h, w2)
    loss = F.cross_entropy(logits.reshape(-1, 5), target.reshape(-1), label_smoothing=0.1, ignore_index=0)
    loss = loss + logits.logsumexp(-1).mean() * 0.01 + (logits ** 2).mean() * 1e-3

    assert loss.dtype == minigrad.float32
    nodes = graph_nodes(loss)
    assert len(nodes) > 30
    saved = [pair for node in nodes for pair in _float_arrays_saved_by(node)]
    assert saved, "the walk found no saved arrays: the test would prove nothing"
    assert [pair for pair in saved if pair[1] != minigrad.float32] == []
    loss.backward()
    for parameter in (w1, b1, gamma, beta, w2, table):
        assert parameter.grad.dtype == minigrad.float32


def test_create_graph_keeps_float32():
    x = minigrad.randn(3, 4, requires_grad=True)
    (g,) = minigrad.grad(F.layer_norm(x, (4,)).tanh().sum(), x, create_graph=True)
    (gg,) = minigrad.grad((g * g).sum(), x)
    assert g.dtype == minigrad.float32 and gg.dtype == minigrad.float32


# -- memory -----------------------------------------------------------------------------------
def test_saved_arrays_are_released_after_backward():
    x = leaf([[1.0, 2.0], [3.0, 4.0]])
    loss = (x.exp() * x).tanh().sum()
    nodes = graph_nodes(loss)
    assert all(node._saved is not None for node in nodes)
    loss.backward()
    assert all(node._saved is None for node in nodes)


def test_retain_graph_keeps_saved_arrays():
    x = leaf([1.0, 2.0])
    loss = (x.exp() * x).sum()
    loss.backward(retain_graph=True)
    assert any(node._saved for node in graph_nodes(loss))


def test_graph_is_freed_when_the_loss_goes_away():
    def live_nodes():
        gc.collect()
        return count_function_nodes()

    before = live_nodes()
    x = leaf(np.ones((3, 3), dtype=np.float32))
    loss = ((x @ x).softmax(-1) * x).sum()
    assert live_nodes() > before
    loss.backward()
    del loss
    assert live_nodes() == before


def _train_step(params, x, y, lr=0.05):
    w1, b1, w2, b2 = params
    hidden = minigrad.relu(x @ w1 + b1)
    loss = F.cross_entropy(hidden @ w2 + b2, y)
    for p in params:
        p.grad = None
    loss.backward()
    with minigrad.no_grad():
        for p in params:
            p.sub_(p.grad * lr)
    return loss.item()


@pytest.mark.slow
def test_memory_does_not_grow_over_1000_training_steps():
    """After 200 warm-up steps, 1,000 more training steps leave no graph nodes behind and
    grow traced memory by less than 64 KiB (pitfall #6: graphs kept alive step after step)."""
    minigrad.manual_seed(0)
    params = [minigrad.randn(4, 16) * 0.5, minigrad.zeros(16), minigrad.randn(16, 3) * 0.5, minigrad.zeros(3)]
    params = [p.requires_grad_() for p in params]
    x = minigrad.randn(32, 4)
    y = minigrad.tensor(np.random.default_rng(0).integers(0, 3, 32))
    losses = []
    for _ in range(100):
        losses.append(_train_step(params, x, y))
    gc.collect()
    tracemalloc.start()
    try:
        for _ in range(100):
            _train_step(params, x, y)
        baseline, _ = tracemalloc.get_traced_memory()
        nodes_before = count_function_nodes()
        for _ in range(1000):
            losses.append(_train_step(params, x, y))
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
        nodes_after = count_function_nodes()
    finally:
        tracemalloc.stop()
    assert losses[-1] < losses[0]  # it did train
    assert nodes_after <= nodes_before
    assert after - baseline < 64 * 1024, f"memory grew by {after - baseline} bytes over 1000 steps"


# -- out-of-range class ids must not wrap around (NumPy reads -1 as the last row) --------------------
@pytest.mark.parametrize("ids", [[-1], [0, 4], [[1, -2]]])
def test_embedding_refuses_out_of_range_ids_on_the_cpu(ids):
    weight = minigrad.randn(4, 3)
    with pytest.raises(IndexError, match="out of bounds"):
        F.embedding(minigrad.tensor(ids), weight)
    assert F.embedding(minigrad.tensor([0, 3]), weight).shape == (2, 3)


@pytest.mark.parametrize("loss_fn", [F.cross_entropy, lambda x, t, **kw: F.nll_loss(x.log_softmax(-1), t, **kw)])
@pytest.mark.parametrize("target", [[0, -1], [3, 0]])
def test_losses_refuse_out_of_range_targets_other_than_ignore_index(loss_fn, target):
    logits = minigrad.randn(2, 3)
    with pytest.raises(IndexError, match="target .* is out of bounds"):
        loss_fn(logits, minigrad.tensor(target))
    ignored = loss_fn(logits, minigrad.tensor([2, -1]), ignore_index=-1)  # -1 as ignore_index is fine
    expected = loss_fn(logits[0:1], minigrad.tensor([2]))
    np.testing.assert_allclose(ignored.item(), expected.item(), rtol=1e-6)


@pytest.mark.parametrize("vocabulary, count", [(1000, 300), (20, 300), (1, 7), (5000, 1)])
def test_scatter_add_rows_sums_ids_seen_once_and_repeated_ones(vocabulary, count):
    """The CPU's scatter_add_rows adds distinct ids in one fancy add and sums repeated ones: both kinds
    mixed, all repeated, a single id -- all as np.add.at, into a target that already holds values."""
    from minigrad.backend import get_backend

    rng = np.random.default_rng(vocabulary)
    rows = rng.integers(0, vocabulary, count)
    values = rng.standard_normal((count, 4))
    target = rng.standard_normal((vocabulary, 4))
    expected = target.copy()
    np.add.at(expected, rows, values)
    before = target.copy()
    get_backend("cpu").scatter_add_rows(target, rows, values)
    np.testing.assert_allclose(target, expected, rtol=1e-12, atol=1e-12)
    unwanted = rows[0]  # present at least once: its ids are left out, its row untouched
    expected = before.copy()
    np.add.at(expected, rows[rows != unwanted], values[rows != unwanted])
    get_backend("cpu").scatter_add_rows(before, rows, values, unwanted_row=unwanted)
    np.testing.assert_allclose(before, expected, rtol=1e-12, atol=1e-12)


def test_embedding_backward_adds_repeated_ids_and_handles_no_ids():
    weight = minigrad.randn(5, 3, dtype=minigrad.float64, requires_grad=True)
    ids = minigrad.tensor([[1, 1, 4], [0, 1, 4]])
    upstream = minigrad.randn(2, 3, 3, dtype=minigrad.float64)
    (F.embedding(ids, weight) * upstream).sum().backward()
    expected = np.zeros((5, 3))
    np.add.at(expected, ids.numpy().reshape(-1), upstream.numpy().reshape(-1, 3))
    np.testing.assert_allclose(weight.grad.numpy(), expected, rtol=0, atol=1e-12)
    weight.grad = None
    F.embedding(minigrad.zeros(2, 0, dtype=minigrad.int64), weight).sum().backward()
    assert not weight.grad.numpy().any()
