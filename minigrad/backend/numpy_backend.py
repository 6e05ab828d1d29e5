"""The NumPy backend: the CPU, and the base class whose methods every backend overrides as needed.

Every op asks its tensor's backend for `xp` (the array module) and writes the same code for all
devices; what differs between the array libraries -- moving arrays to and from the host,
scatter-add, random generators, `erf`, spreading elementwise work over threads -- is a method here.
"""
import math

import numpy

from ..kernels import dropout_mask, thread_pool
from .seeds import seed_for


class Backend:
    """One array library on one device: how to create, move, scatter and draw arrays."""

    xp = numpy
    array_type = numpy.ndarray

    def __init__(self, device="cpu"):
        self.device = device
        self.rng = self._make_generator(seed_for(device))
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
        """Call kernel(start, stop) on blocks of range(rows) that together cover it, on minigrad's
        threads (see minigrad.kernels.thread_pool): a NumPy ufunc runs on one core but releases the GIL."""
        thread_pool.parallel_for(kernel, rows, row_size, passes)

    def parallel_for_each(self, jobs, passes=1):
        """parallel_for over several independent jobs, each (kernel, rows, row_size), in one queue of blocks."""
        thread_pool.parallel_for_each(jobs, passes)

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
        """A bool array whose elements are True with probability 1 - p (dropout's mask): exact
        32-bit thresholds from 8 random bits an element, drawn on every thread, the same whatever
        the thread count (see minigrad.kernels.dropout_mask)."""
        return dropout_mask.keep_mask(self.rng.bit_generator, shape, p, self.parallel_for)

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
        from .registry import get_backend  # the registry imports this module

        return get_backend, (self.device,)


def _drawn_as(draw, shape, dtype):
    """NumPy's generators draw only float32/float64: other float dtypes (float16) are drawn as float32 and cast."""
    dtype = numpy.dtype(dtype)
    if dtype in (numpy.float32, numpy.float64):
        return draw(shape, dtype=dtype)
    return draw(shape, dtype=numpy.float32).astype(dtype)
