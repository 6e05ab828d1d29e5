"""Kernels split into row blocks across threads (Backend.parallel_for) give the results of one thread."""
import math

import numpy as np
import pytest

import minigrad
import minigrad.functional as F
from minigrad.backend import get_backend
from minigrad.kernels import thread_pool


@pytest.fixture
def threads():
    """Run a test body with a chosen thread count; restores the count afterwards."""
    before = minigrad.get_num_threads()
    yield minigrad.set_num_threads
    minigrad.set_num_threads(before)


@pytest.mark.parametrize("rows, row_size, passes", [(0, 5, 1), (1, 10, 1), (7, 3, 1), (1000, 3000, 1),
                                                    (4096, 512, 8), (3, 1 << 20, 1)])
@pytest.mark.parametrize("count", [1, 2, 3])
def test_blocks_cover_every_row_once(threads, rows, row_size, passes, count):
    threads(count)
    seen = np.zeros(rows, dtype=int)
    get_backend("cpu").parallel_for(lambda start, stop: seen.__setitem__(slice(start, stop), seen[start:stop] + 1),
                                    rows, row_size, passes)
    assert (seen == 1).all()


@pytest.mark.parametrize("count", [1, 2, 3])
def test_each_job_of_a_batch_is_covered_once(threads, count):
    """parallel_for_each: jobs of many sizes (an optimizer's parameters) share one queue of blocks."""
    threads(count)
    shapes = [(0, 4), (1, 1), (3, 7), (700, 900), (2048, 512), (5, 1 << 19), (1, 1 << 21)]
    seen = [np.zeros(rows, dtype=int) for rows, _ in shapes]

    def job(counts):
        return lambda start, stop: counts.__setitem__(slice(start, stop), counts[start:stop] + 1)

    get_backend("cpu").parallel_for_each([(job(c), rows, size) for c, (rows, size) in zip(seen, shapes)], passes=4)
    assert all((counts == 1).all() for counts in seen)


def test_an_error_in_one_job_of_a_batch_reaches_the_caller(threads):
    threads(2)

    def failing(start, stop):
        raise ValueError("bad job")

    with pytest.raises(ValueError, match="bad job"):
        get_backend("cpu").parallel_for_each([(lambda start, stop: None, 4096, 4096), (failing, 4096, 4096)])


def test_the_caller_does_not_wait_for_a_thread_that_has_not_started(threads):
    """A pool thread held elsewhere (as by BLAS's spinning threads on a busy core): this thread does
    every block and returns without waiting for it; the late thread then finds nothing to do."""
    import threading

    threads(2)
    release, woke = threading.Event(), threading.Event()

    def busy():
        release.wait(timeout=10)
        woke.set()

    thread_pool._thread_pool(1).submit(busy)
    seen = np.zeros(4096, dtype=int)
    get_backend("cpu").parallel_for(lambda start, stop: seen.__setitem__(slice(start, stop), seen[start:stop] + 1),
                                    4096, 4096)
    returned_before_release = not woke.is_set()
    release.set()
    assert returned_before_release and (seen == 1).all()
    assert woke.wait(timeout=10)


def test_big_jobs_are_split_between_threads(threads):
    threads(2)
    blocks = []
    get_backend("cpu").parallel_for(lambda start, stop: blocks.append((start, stop)), 4096, 4096)
    assert len(blocks) >= 2 and sorted(blocks)[0][0] == 0 and sorted(blocks)[-1][1] == 4096


def test_a_kernel_error_reaches_the_caller(threads):
    threads(2)

    def kernel(start, stop):
        if start > 0:
            raise ValueError(f"bad block {start}")

    with pytest.raises(ValueError, match="bad block"):
        get_backend("cpu").parallel_for(kernel, 4096, 4096)


def test_set_num_threads_checks_its_argument(threads):
    with pytest.raises(ValueError, match="positive"):
        threads(0)
    threads(3)
    assert minigrad.get_num_threads() == 3


def test_thread_count_follows_the_blas_setting(monkeypatch):
    monkeypatch.setattr(thread_pool, "_num_threads", None)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert minigrad.get_num_threads() == 3


def _reference_keep_mask(bit_generator, size, p):
    """Element i kept iff its 32-bit number (top 8 bits from one sequential draw, low 24 bits drawn
    afterwards for the elements whose top bits tie with the threshold's) is >= p * 2**32."""
    threshold = min(round(p * 2 ** 32), 2 ** 32 - 1)
    top = bit_generator.random_raw(-(-size // 8)).view(np.uint8)[:size].astype(np.int64)
    tied = np.flatnonzero(top == threshold >> 24)
    number = top << 24
    if tied.size:
        number[tied] += bit_generator.random_raw(-(-tied.size // 2)).view(np.uint32)[:tied.size] >> 8
    number[np.setdiff1d(np.arange(size), tied)] += 2 ** 24 - 1  # top bits above/below decide alone
    return number >= threshold


@pytest.mark.parametrize("count", [1, 2, 4])
def test_dropout_masks_are_one_sequential_draw(threads, count):
    """Blocks jump ahead in the PCG64 stream: the mask is the same whatever the thread count,
    ties are resolved in stream order, and the generator ends where a single draw would leave it."""
    threads(count)
    seed = 5 + count  # a new mask each run: a block left undrawn cannot hold a stale copy of the right bits
    minigrad.manual_seed(seed)
    backend = get_backend("cpu")
    size = 2047 * 1031
    mask = backend.keep_mask((2047, 1031), 0.25)
    after = backend.keep_mask((3,), 0.5)
    reference = np.random.Generator(np.random.PCG64(seed)).bit_generator
    expected = _reference_keep_mask(reference, size, 0.25)
    assert (mask.ravel() == expected).all()
    assert (after == _reference_keep_mask(reference, 3, 0.5)).all()
    assert abs(mask.mean() - 0.75) < 0.005


@pytest.mark.parametrize("p", [0.1, 0.5, 1e-9, 1 - 1e-9])
def test_dropout_masks_keep_each_element_with_probability_one_minus_p(p):
    """Ties between the drawn top bits and the threshold's occur (about 8 000 in 2M elements) and
    are resolved; the keep rate matches 1 - p to within sampling error."""
    minigrad.manual_seed(11)
    mask = get_backend("cpu").keep_mask((2048, 1024), p)
    n = mask.size
    assert abs(mask.mean() - (1 - p)) < 5 * math.sqrt(p * (1 - p) / n) + 1e-6


def _run_with_threads(threads, count, compute):
    threads(count)
    minigrad.manual_seed(0)
    return compute()


def _same_with_one_and_four_threads(threads, compute):
    """Equal up to rounding (float64): row means are GEMVs, and BLAS may group a dot product's terms
    differently when a block starts at another row, so the last bits can differ (as in PyTorch,
    results may change with the thread count); a wrong or missing block would be off by O(1)."""
    one = _run_with_threads(threads, 1, compute)
    four = _run_with_threads(threads, 4, compute)
    for a, b in zip(one, four):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-10, atol=1e-12)


def _leaf(rng, *shape):
    return minigrad.tensor(rng.standard_normal(shape), requires_grad=True)  # float64


def test_cross_entropy_in_blocks(threads):
    def compute():
        rng = np.random.default_rng(0)
        logits = _leaf(rng, 1500, 700)
        target = minigrad.tensor(rng.integers(0, 700, 1500))
        loss = F.cross_entropy(logits, target, ignore_index=3, label_smoothing=0.1)
        loss.backward()
        return loss, logits.grad
    _same_with_one_and_four_threads(threads, compute)


def test_layer_norm_and_linear_in_blocks(threads):
    def compute():
        rng = np.random.default_rng(1)
        x, w, b = _leaf(rng, 40, 50, 300), _leaf(rng, 300), _leaf(rng, 300)
        weight, bias = _leaf(rng, 600, 300), _leaf(rng, 600)
        y = F.linear(F.layer_norm(x, 300, w, b), weight, bias)
        (y * y).sum().backward()
        return y, x.grad, w.grad, b.grad, weight.grad, bias.grad
    _same_with_one_and_four_threads(threads, compute)


def test_dropout_in_blocks(threads):
    def compute():
        x = _leaf(np.random.default_rng(2), 1200, 900)
        y = F.dropout(x, 0.3)
        (y * y).sum().backward()
        return y, x.grad
    _same_with_one_and_four_threads(threads, compute)


def test_attention_in_blocks(threads):
    def compute():
        rng = np.random.default_rng(3)
        queries, keys_values = _leaf(rng, 48, 20, 64), _leaf(rng, 48, 30, 128)
        mask = minigrad.tensor(rng.random((48, 1, 1, 30)) < 0.2).data
        context, weights = F.multi_head_attention(queries, keys_values, 4, mask, dropout_p=0.1, training=True)
        (context * context).sum().backward()
        return context, weights, queries.grad, keys_values.grad
    _same_with_one_and_four_threads(threads, compute)


@pytest.mark.parametrize("name", ["Adam", "AdamW"])
def test_adam_in_blocks(threads, name):
    def compute():
        rng = np.random.default_rng(4)
        params = [_leaf(rng, 900, 700), _leaf(rng, 700), minigrad.tensor(1.5, requires_grad=True,
                                                                            dtype=minigrad.float64)]
        optimizer = getattr(minigrad.optim, name)(params, lr=0.01, weight_decay=0.1, amsgrad=True)
        for _ in range(3):
            optimizer.zero_grad()
            sum((p * p * p).sum() for p in params).backward()
            optimizer.step()
        return params
    _same_with_one_and_four_threads(threads, compute)


def test_a_kernel_may_call_parallel_for_itself(threads):
    """Pool workers run nested jobs inline (waiting on their own pool would deadlock)."""
    threads(2)
    backend = get_backend("cpu")
    seen = np.zeros((64, 64), dtype=int)

    def outer(start, stop):
        for row in range(start, stop):
            backend.parallel_for(lambda a, b: seen[row].__setitem__(slice(a, b), seen[row, a:b] + 1), 64, 1 << 16)

    backend.parallel_for(outer, 64, 1 << 16)
    assert (seen == 1).all()


def test_a_forked_child_starts_its_own_threads(threads):
    """After fork the parent's pool threads do not exist in the child; the child must not wait on them."""
    import multiprocessing

    threads(2)
    get_backend("cpu").parallel_for(lambda start, stop: None, 4096, 4096)  # the parent's pool exists now
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        assert pool.apply_async(_sum_in_blocks).get(timeout=60) == 4096 * 4096


def _sum_in_blocks():
    minigrad.set_num_threads(2)
    total = np.zeros(4096)
    get_backend("cpu").parallel_for(lambda start, stop: total.__setitem__(slice(start, stop), 4096), 4096, 4096)
    return int(total.sum())


def test_dropout_add_layer_norm_in_blocks(threads):
    def compute():
        rng = np.random.default_rng(6)
        x, residual, w, b = _leaf(rng, 40, 50, 600), _leaf(rng, 40, 50, 600), _leaf(rng, 600), _leaf(rng, 600)
        y = F.dropout_add_layer_norm(x, residual, 0.2, 600, w, b)
        (y * y).sum().backward()
        return y, x.grad, residual.grad, w.grad, b.grad
    _same_with_one_and_four_threads(threads, compute)
