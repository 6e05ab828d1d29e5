"""Backends: the one place that knows which array library holds a tensor's data.

Every op asks its tensor's backend for `xp` (the array module: NumPy or CuPy) and
writes the same code for both. Whatever differs between the libraries -- moving
arrays to and from the host, scatter-add, random generators, `erf` -- lives here
and nowhere else, so that the GPU path is the CPU path.

A device is named by a string: "cpu" (NumPy) or "cuda" / "cuda:N" (CuPy).
Tests register a simulated device that follows CuPy's rules (see tests/fake_gpu.py).
"""
import ctypes
import math
import os
import platform
import threading
from concurrent.futures import ThreadPoolExecutor

# OpenBLAS's idle threads spin for 2**28 cycles (about 0.1 s) after each matrix product before
# they sleep, holding a core that minigrad's elementwise threads (parallel_for) then wait for;
# 2**20 cycles (well under a millisecond) still bridges back-to-back products. OpenBLAS reads
# this when it loads, so it only applies when NumPy is imported after minigrad; a value you set wins.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "20")

import numpy  # noqa: E402

_DEFAULT_SEED = 0


class Backend:
    """One array library on one device: how to create, move, scatter and draw arrays."""

    xp = numpy
    array_type = numpy.ndarray

    def __init__(self, device="cpu"):
        self.device = device
        self.rng = self._make_generator(_seed_for(device))
        self._constant_columns = {}

    # -- moving data ------------------------------------------------------------
    def asarray(self, data, dtype=None):
        """Wrap host data (lists, scalars, NumPy arrays) as an array on this device."""
        return self.xp.asarray(data, dtype=dtype)

    def to_host(self, array):
        """A NumPy array with the same values (an explicit device-to-host copy)."""
        return numpy.asarray(array)

    # -- ops whose spelling differs between libraries ----------------------------
    def scatter_add(self, target, index, values):
        """target[index] += values, adding repeated indices up (in place)."""
        numpy.add.at(target, index, values)

    def scatter_add_rows(self, target, rows, values, unwanted_row=None):
        """target[rows[i]] += values[i] for 1-D `rows` (an embedding's gradient), repeats adding up.

        `unwanted_row`: a row whose sum the caller throws away (an embedding's padding row, whose
        ids can be a quarter of a batch): here its ids are left out first. Other backends may
        still add into it.

        Sorting the rows groups the repeats of each id; ids seen once (most of them, with a large
        vocabulary) are added with one fancy-indexed add, and only the repeated ones are summed
        with add.reduceat, which loops in Python-free but slow steps of one group and one column
        at a time. Several times faster than the general add.at, and deterministic.
        """
        if unwanted_row is not None:
            wanted = numpy.flatnonzero(rows != unwanted_row)
            rows, values = rows[wanted], values[wanted]
        if rows.size == 0:
            return
        order = rows.argsort(kind="stable")
        sorted_rows, sorted_values = rows[order], values[order]
        group_start = numpy.empty(rows.size, dtype=bool)
        group_start[0] = True
        numpy.not_equal(sorted_rows[1:], sorted_rows[:-1], out=group_start[1:])
        starts = numpy.flatnonzero(group_start)
        lengths = numpy.diff(starts, append=rows.size)
        repeated = lengths > 1
        alone = starts[~repeated]
        target[sorted_rows[alone]] += sorted_values[alone]  # distinct rows: no two writes collide
        if alone.size < starts.size:
            in_repeated_group = numpy.repeat(repeated, lengths)
            group_offsets = numpy.cumsum(lengths[repeated]) - lengths[repeated]
            target[sorted_rows[starts[repeated]]] += numpy.add.reduceat(sorted_values[in_repeated_group],
                                                                          group_offsets, axis=0)

    # -- constants ------------------------------------------------------------------
    def constant_column(self, length, value, dtype):
        """A (length, 1) array filled with `value`, made once per device and shape and then shared:
        never write to it. A product with it sums (value 1) or averages (1 / length) each row in one
        GEMV, and a small model asks for the same few columns thousands of times a step."""
        key = (length, value, dtype)
        column = self._constant_columns.get(key)
        if column is None:
            if len(self._constant_columns) >= 256:  # many key lengths over a run: start again
                self._constant_columns.clear()
            column = self._constant_columns[key] = self._filled((length, 1), value, dtype)
        return column

    def _filled(self, shape, value, dtype):
        return self.xp.full(shape, value, dtype=dtype)

    # -- elementwise work on every core ----------------------------------------------
    def parallel_for(self, kernel, rows, row_size, passes=1):
        """Call kernel(start, stop) on blocks of range(rows) that together cover it, using every thread.

        A NumPy ufunc runs on one core but releases the GIL while it loops, so blocks of rows
        handed to a few threads keep every core busy: the big elementwise passes of a step (the
        loss over a tokens x vocabulary matrix, attention, Adam over millions of weights) take
        about half the time on two cores. Blocks of about a megabyte (`row_size` elements per
        row) also keep a kernel's several passes in the cache. `kernel` must only write its own
        rows. Jobs under about a millisecond (rows x row_size x `passes`, the kernel's passes
        over each element) run inline: a worker may wait that long for a core that BLAS's
        threads still hold after a matrix product.
        """
        if rows * row_size <= _BLOCK_ELEMENTS and rows * row_size * passes < _PARALLEL_MIN_WORK:
            kernel(0, rows)  # small: one block, this thread (the common case at small model sizes)
            return
        self.parallel_for_each([(kernel, rows, row_size)], passes)

    def parallel_for_each(self, jobs, passes=1):
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

    def erf(self, x):
        try:
            from scipy.special import erf
        except ImportError:  # exact but slow: one Python call per element
            return numpy.vectorize(math.erf, otypes=[x.dtype])(x)
        return erf(x)

    # -- random numbers ----------------------------------------------------------
    def _make_generator(self, seed):
        return numpy.random.Generator(numpy.random.PCG64(seed))

    def seed(self, seed):
        self.rng = self._make_generator(seed)

    def rand(self, shape, dtype):
        return _drawn_as(self.rng.random, shape, dtype)

    def randn(self, shape, dtype):
        return _drawn_as(self.rng.standard_normal, shape, dtype)

    def keep_mask(self, shape, p):
        """A bool array whose elements are True with probability 1 - p (dropout's mask).

        An element is dropped when its random 32-bit number is below t = p * 2**32 (exact to
        2**-32; a float32 uniform would give 2**-24). Only the top 8 bits are drawn up front: they
        decide unless they equal t's own top 8 bits, which happens once in 256 elements, and those
        ties draw their low 24 bits afterwards -- the same probability as 32 bits everywhere, from
        a quarter of the random numbers. Blocks run on all threads, each jumping a copy of the
        generator to its own place in the stream (PCG64.advance): the mask depends on the seed
        only, not on the number of threads.
        """
        size = math.prod(shape)
        words = -(-size // 8)  # 64-bit draws: eight 8-bit numbers each
        mask = numpy.empty(8 * words, dtype=bool)
        threshold = min(round(p * 2 ** 32), 2 ** 32 - 1)
        high, low = threshold >> 24, threshold & (2 ** 24 - 1)
        stream = self.rng.bit_generator
        start_state = stream.state
        ties = {}

        def draw(start, stop):
            generator = _thread_bit_generator()
            generator.state = start_state
            generator.advance(start)
            top = generator.random_raw(stop - start).view(numpy.uint8)
            numpy.greater(top, high, out=mask[8 * start:8 * stop])
            tied = numpy.flatnonzero(top == high)
            if tied.size:
                ties[start] = tied + 8 * start

        self.parallel_for(draw, words, 8, passes=3)  # a draw costs about three simple passes
        stream.advance(words)
        if ties:
            tied = numpy.concatenate([ties[start] for start in sorted(ties)])  # stream order, whatever the threads
            bottom = stream.random_raw(-(-tied.size // 2)).view(numpy.uint32)[:tied.size] >> 8  # 24 bits each
            mask[tied] = bottom >= low
        return mask[:size].reshape(shape)

    def randint(self, low, high, shape, dtype):
        return self.rng.integers(low, high, size=shape, dtype=dtype)

    def get_rng_state(self):
        """A JSON-friendly dict describing the generator's state."""
        return self.rng.bit_generator.state

    def set_rng_state(self, state):
        self.rng.bit_generator.state = state

    def synchronize(self):
        """Wait for queued device work (a no-op on the CPU); used by benchmarks."""

    def make_current(self):
        """Make this device the one new arrays and kernels go to (a no-op on the CPU)."""

    def __repr__(self):
        return f"<{type(self).__name__} {self.device}>"

    def __reduce__(self):
        """copy.deepcopy and pickle give the registry's Backend for this device, not a second one:
        ops compare backends by identity, so a copied tensor must keep the one of its device."""
        return get_backend, (self.device,)


def _drawn_as(draw, shape, dtype):
    """NumPy's generators draw only float32/float64: other float dtypes (float16) are drawn as float32 and cast."""
    dtype = numpy.dtype(dtype)
    if dtype in (numpy.float32, numpy.float64):
        return draw(shape, dtype=dtype)
    return draw(shape, dtype=numpy.float32).astype(dtype)


class CupyBackend(Backend):
    """CuPy on one NVIDIA GPU. Imported lazily so that CPU-only machines never need CuPy."""

    def __init__(self, device):
        import cupy

        self.xp = cupy
        self.array_type = cupy.ndarray
        self.device_id = int(device.split(":")[1])
        self._cuda_device = cupy.cuda.Device(self.device_id)
        with self._cuda_device:
            super().__init__(device)

    def asarray(self, data, dtype=None):
        with self._cuda_device:
            return self.xp.asarray(data, dtype=dtype)

    def to_host(self, array):
        return array.get()

    def scatter_add(self, target, index, values):
        import cupyx

        cupyx.scatter_add(target, index, values)

    def scatter_add_rows(self, target, rows, values, unwanted_row=None):
        self.scatter_add(target, rows, values)  # atomic adds are the fast way on a GPU (no filtering: a sync)

    def parallel_for(self, kernel, rows, row_size, passes=1):
        kernel(0, rows)  # a GPU kernel already runs on every core: one launch over all rows

    def parallel_for_each(self, jobs, passes=1):
        for kernel, rows, _ in jobs:
            kernel(0, rows)

    def _filled(self, shape, value, dtype):
        with self._cuda_device:
            return self.xp.full(shape, value, dtype=dtype)

    def erf(self, x):
        from cupyx.scipy.special import erf

        return erf(x)

    def _make_generator(self, seed):
        with self._cuda_device:  # the generator's state lives on this GPU (also when manual_seed reseeds)
            return self.xp.random.default_rng(seed)

    def rand(self, shape, dtype):
        with self._cuda_device:  # CuPy's Generator takes any float dtype (draws float32, then casts)
            return self.rng.random(shape, dtype=dtype)

    def randn(self, shape, dtype):
        with self._cuda_device:
            return self.rng.standard_normal(shape, dtype=dtype)

    def keep_mask(self, shape, p):
        return self.rand(shape, numpy.float32) >= p

    def randint(self, low, high, shape, dtype):
        with self._cuda_device:
            return self.rng.integers(low, high, size=shape, dtype=dtype)

    def get_rng_state(self):
        return None  # CuPy's generators cannot be serialised; resume reseeds instead

    def set_rng_state(self, state):
        pass

    def synchronize(self):
        self._cuda_device.synchronize()

    def make_current(self):
        # CuPy runs kernels on the *current* GPU; ops do not switch devices per call, so "cuda:1"
        # works when it is the current device -- set_default_device("cuda:1") makes it so.
        self._cuda_device.use()


# -- CPU threads -------------------------------------------------------------------------
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


def _thread_bit_generator():
    """A PCG64 owned by the calling thread, for keep_mask's blocks (a new one costs a seeding)."""
    generator = getattr(_thread_state, "bit_generator", None)
    if generator is None:
        generator = _thread_state.bit_generator = numpy.random.PCG64(0)
    return generator


def _keep_freed_host_memory():
    """Ask glibc's malloc to keep freed blocks of up to 1 GiB for reuse instead of unmapping them.

    A training step allocates and frees the same large arrays every step (a tokens x vocabulary
    matrix of logits is 65 MB at base size). By default glibc hands blocks over 32 MB straight
    back to the kernel, so the next step pays page faults and zero-filling for all of it again
    (10-20% of a step in benchmarks/transformer_step.py on a 2-core machine). Set MINIGRAD_KEEP_FREED_MEMORY=0 to leave malloc as it is.
    """
    if os.environ.get("MINIGRAD_KEEP_FREED_MEMORY", "1") == "0" or platform.libc_ver()[0] != "glibc":
        return
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    mallopt(m_mmap_threshold, 1 << 30)
    mallopt(m_trim_threshold, 1 << 30)


_keep_freed_host_memory()


# -- the registry of devices --------------------------------------------------------
_backends = {}          # "cpu", "cuda:0", ... -> Backend
_factories = {"cpu": lambda device: Backend(device), "cuda": CupyBackend}
_seeds = {}             # device -> seed given by manual_seed (devices made later use it)
_default_device = os.environ.get("MINIGRAD_DEVICE", "cpu")


def register_device_type(prefix, factory):
    """Teach `get_backend` a new device type (used by the test suite's simulated GPU)."""
    _factories[prefix] = factory


def canonical_device(device):
    """'cuda' -> 'cuda:0'; 'cpu' stays 'cpu'; a Device or Backend gives its name."""
    source = ""
    if device is None:
        device, source = _default_device, " (the default device, from set_default_device or $MINIGRAD_DEVICE)"
    device = str(getattr(device, "device", device))
    prefix, _, index = device.partition(":")
    if prefix not in _factories or (index and not index.isdigit()) or (prefix == "cpu" and index not in ("", "0")):
        raise ValueError(f"unknown device {device!r}{source}: expected 'cpu' or 'cuda[:N]'")
    if prefix == "cpu":
        return "cpu"
    return f"{prefix}:{int(index or 0)}"


def get_backend(device=None):
    """The Backend for a device name, created on first use."""
    if isinstance(device, Backend):
        return device
    name = canonical_device(device)
    backend = _backends.get(name)
    if backend is None:
        try:
            backend = _factories[name.partition(":")[0]](name)
        except ImportError as error:
            raise RuntimeError(
                f"device {name!r} needs CuPy, which is not installed ({error}); "
                "install it with: pip install 'minigrad[gpu]'") from error
        _backends[name] = backend
    return backend


def backend_of_array(array):
    """The Backend that owns an array (for wrapping arrays made outside minigrad)."""
    if isinstance(array, numpy.ndarray):
        return get_backend("cpu")
    for backend in _backends.values():
        if isinstance(array, backend.array_type):
            if hasattr(backend, "device_id") and array.device.id != backend.device_id:
                continue
            return backend
    module = type(array).__module__.split(".")[0]
    if module == "cupy":
        return get_backend(f"cuda:{array.device.id}")
    return None


def set_default_device(device):
    """Where new tensors go when no device is given (also set by $MINIGRAD_DEVICE)."""
    global _default_device
    _default_device = canonical_device(device)
    if _default_device != "cpu":
        get_backend(_default_device).make_current()


def get_default_device():
    return canonical_device(_default_device)


def _seed_for(device):
    return _seeds.get(device, _seeds.get("*", _DEFAULT_SEED))


def manual_seed(seed):
    """Reseed every device's generator: all random draws of minigrad become reproducible."""
    _seeds.clear()
    _seeds["*"] = int(seed)
    for backend in _backends.values():
        backend.seed(int(seed))


def get_rng_state():
    """States of every device generator created so far (for checkpoints)."""
    return {name: backend.get_rng_state() for name, backend in _backends.items()}


def set_rng_state(states):
    for name, state in states.items():
        if state is not None:
            get_backend(name).set_rng_state(state)


def cuda_device_count():
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount()
    except Exception:  # no CuPy, or no driver
        return 0


# -- the host side: dtypes and host arrays ---------------------------------------------------
# NumPy is also the host's array library: dtypes are NumPy dtypes on every device (CuPy uses them
# too), data from Python becomes a host array before it goes to a device, and printing,
# gradcheck's finite differences and checkpoints work on host arrays. They reach NumPy through here.
host_numpy = numpy
dtype = numpy.dtype
host_scalar_types = (numpy.ndarray, numpy.generic)


def host_array(data, dtype=None):
    """Python data (lists, numbers, NumPy arrays) as a host NumPy array."""
    return numpy.asarray(data, dtype=dtype)


def format_host_array(array, **options):
    return numpy.array2string(array, **options)


def cuda_is_available():
    """True when CuPy imports and sees at least one GPU."""
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # ImportError, or CUDA driver errors of many kinds
        return False


# -- checkpoint files (host side; used by minigrad.serialization) -----------------------------
_DOCUMENT_NAME = "__document__"


def save_archive(file, document, arrays):
    """Write a text document and named host arrays into an open binary file as one .npz archive."""
    for name, array in arrays.items():
        if array.dtype.kind not in "biuf":
            raise TypeError(f"save_archive: array {name!r} has dtype {array.dtype}, which would need pickling")
    encoded = numpy.frombuffer(document.encode("utf-8"), dtype=numpy.uint8)
    numpy.savez(file, **{_DOCUMENT_NAME: encoded}, **arrays)


def load_archive(file):
    """(document or None, {name: host array}) from an .npz archive, read with pickling disabled.

    allow_pickle=False makes NumPy refuse object arrays and pickle streams outright,
    so a crafted file can fail to load but never run code.
    """
    archive = numpy.load(file, allow_pickle=False)
    if not isinstance(archive, numpy.lib.npyio.NpzFile):
        raise ValueError("this is a single .npy array, not an .npz archive")
    with archive:
        arrays = {name: archive[name] for name in archive.files}
    document = arrays.pop(_DOCUMENT_NAME, None)
    if document is not None:
        document = document.tobytes().decode("utf-8")
    return document, arrays
