"""minigrad's own CPU threads: the big elementwise kernels run on every core in row blocks.

A NumPy ufunc runs on one core but releases the GIL while it loops, so blocks of rows handed to a
few threads keep every core busy. The NumPy backend's parallel_for / parallel_for_each come here;
the CuPy backend does not (a GPU kernel already runs on every core). Matrix products are not
scheduled here: they run in NumPy's BLAS, on its own threads.
"""
import os
import threading
from concurrent.futures import ThreadPoolExecutor

_SMALL_JOB_ELEMENTS = 1 << 15       # parallel_for_each runs jobs below this on the calling thread
_BLOCK_ELEMENTS = 1 << 18           # rows per block of parallel_for: about 1 MB of float32
_PARALLEL_MIN_WORK = 1 << 20        # element-passes; below this (about a millisecond) one thread
_BLOCKS_PER_THREAD = 2          # blocks handed out per thread: a late-starting thread takes fewer
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_num_threads = None
_pool, _pool_size = None, 0


def _threads_from_environment():
    """The BLAS libraries' own setting when one is given (so that both follow one knob), else the usable cores."""
    for variable in _THREAD_VARIABLES:
        value = os.environ.get(variable, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def get_num_threads():
    """Threads minigrad's elementwise kernels use on the CPU (torch.get_num_threads)."""
    global _num_threads
    if _num_threads is None:
        _num_threads = _threads_from_environment()
    return _num_threads


def set_num_threads(threads):
    """Use `threads` threads for elementwise kernels on the CPU (torch.set_num_threads). Matrix
    products run in NumPy's BLAS, whose threads are set by $OPENBLAS_NUM_THREADS / $OMP_NUM_THREADS."""
    global _num_threads
    if int(threads) < 1:
        raise ValueError(f"set_num_threads: expected a positive number of threads, got {threads}")
    _num_threads = int(threads)


def parallel_for(kernel, rows, row_size, passes=1):
    """Call kernel(start, stop) on blocks of range(rows) that together cover it, using every thread.

    The big elementwise passes of a step (the loss over a tokens x vocabulary matrix, attention,
    Adam over millions of weights) take about half the time on two cores. Blocks of about a
    megabyte (`row_size` elements per row) also keep a kernel's several passes in the cache.
    `kernel` must only write its own rows. Jobs under about a millisecond (rows x row_size x
    `passes`, the kernel's passes over each element) run inline: a worker may wait that long for
    a core that BLAS's threads still hold after a matrix product.
    """
    if rows * row_size <= _BLOCK_ELEMENTS and rows * row_size * passes < _PARALLEL_MIN_WORK:
        kernel(0, rows)  # small: one block, this thread (the common case at small model sizes)
        return
    parallel_for_each([(kernel, rows, row_size)], passes)


def parallel_for_each(jobs, passes=1):
    """parallel_for over several independent jobs, each (kernel, rows, row_size), at once.

    The blocks of all the big jobs go into one queue: an optimizer updating a hundred
    parameters wakes the threads once, and its many tensors keep both cores busy the way one
    big tensor does, instead of each running alone in turn. Small jobs gain nothing from
    another thread (their time is Python's, under the GIL): this thread runs them while the
    others wake up, then joins the queue.
    """
    small = [job for job in jobs if job[1] * job[2] < _SMALL_JOB_ELEMENTS]
    big = [job for job in jobs if job[1] * job[2] >= _SMALL_JOB_ELEMENTS]
    elements = sum(rows * row_size for _, rows, row_size in big)
    threads = get_num_threads()
    parallel = (threads > 1 and elements * passes >= _PARALLEL_MIN_WORK
                and not getattr(_thread_state, "is_worker", False))  # a kernel's own parallel_for runs inline
    block_elements = _BLOCK_ELEMENTS
    if parallel:  # several blocks per thread, so that a thread that starts late takes fewer of them
        block_elements = min(block_elements, -(-elements // (threads * _BLOCKS_PER_THREAD)))
    blocks = []
    for kernel, rows, row_size in big:
        block_rows = max(1, block_elements // max(row_size, 1))
        blocks += [(kernel, start, min(start + block_rows, rows)) for start in range(0, rows, block_rows)]
    queue = _BlockQueue(blocks)
    if parallel and len(blocks) > 1:
        for _ in range(min(threads, len(blocks)) - 1):
            _thread_pool(threads - 1).submit(queue.work)
    try:
        for kernel, rows, _ in small:
            if rows:
                kernel(0, rows)
    finally:
        queue.work()  # this thread works on the big blocks too (all of them when not parallel)
        queue.wait()  # for blocks other threads took; re-raises the first kernel error


class _BlockQueue:
    """A job's blocks, shared by the threads: each takes the next one when it is free.

    The caller waits only for blocks that another thread has taken, never for a thread that has
    not started yet: right after a matrix product OpenBLAS's threads may hold the other core for a
    while, and by the time a late pool thread runs, this one may have done every block (the late
    thread then finds the queue empty and stops).
    """

    def __init__(self, blocks):
        self._blocks = iter(blocks)
        self._changed = threading.Condition()
        self._running = 0
        self._error = None

    def work(self):
        while True:
            with self._changed:
                block = next(self._blocks, None) if self._error is None else None
                if block is None:
                    return
                self._running += 1
            kernel, start, stop = block
            error = None
            try:
                kernel(start, stop)
            except BaseException as raised:  # handed to the caller by wait(); the others stop taking blocks
                error = raised
            with self._changed:
                self._error = self._error or error
                self._running -= 1
                self._changed.notify_all()

    def wait(self):
        with self._changed:
            while self._running:
                self._changed.wait()
        if self._error is not None:
            raise self._error


def _thread_pool(workers):
    global _pool, _pool_size
    if _pool is None or _pool_size < workers:
        if _pool is not None:
            _pool.shutdown(wait=False)
        _pool = ThreadPoolExecutor(workers, thread_name_prefix="minigrad", initializer=_mark_worker)
        _pool_size = workers
    return _pool


def _mark_worker():
    _thread_state.is_worker = True


def _forget_pool_after_fork():
    """A forked child has none of the parent's threads: it must start its own pool, not wait on the old one."""
    global _pool, _pool_size
    _pool, _pool_size = None, 0


_thread_state = threading.local()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)
