"""Dropout's keep-mask on the CPU from a quarter of the random bits, drawn on every thread.

An element is dropped when its random 32-bit number is below t = p * 2**32 (exact to 2**-32; a
float32 uniform would give 2**-24). Only the top 8 bits are drawn up front: they decide unless
they equal t's own top 8 bits, which happens once in 256 elements, and those ties draw their low
24 bits afterwards -- the same probability as 32 bits everywhere, from a quarter of the random
numbers. Blocks run on all threads, each jumping a copy of the generator to its own place in the
stream (PCG64.advance): the mask depends on the seed only, not on the number of threads.
"""
import math
import threading

from ..backend.host import host_numpy as numpy  # host arrays: the NumPy backend's, and the fake GPU's inside


def keep_mask(stream, shape, p, parallel_for):
    """A bool host array whose elements are True with probability 1 - p, drawn from the PCG64
    bit generator `stream` (left where one sequential draw would leave it); `parallel_for` is the
    backend's, which runs the blocks of draws."""
    size = math.prod(shape)
    words = -(-size // 8)  # 64-bit draws: eight 8-bit numbers each
    mask = numpy.empty(8 * words, dtype=bool)
    threshold = min(round(p * 2 ** 32), 2 ** 32 - 1)
    high, low = threshold >> 24, threshold & (2 ** 24 - 1)
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

    parallel_for(draw, words, 8, passes=3)  # a draw costs about three simple passes
    stream.advance(words)
    if ties:
        tied = numpy.concatenate([ties[start] for start in sorted(ties)])  # stream order, whatever the threads
        bottom = stream.random_raw(-(-tied.size // 2)).view(numpy.uint32)[:tied.size] >> 8  # 24 bits each
        mask[tied] = bottom >= low
    return mask[:size].reshape(shape)


_thread_generators = threading.local()


def _thread_bit_generator():
    """A PCG64 owned by the calling thread, for keep_mask's blocks (a new one costs a seeding)."""
    generator = getattr(_thread_generators, "bit_generator", None)
    if generator is None:
        generator = _thread_generators.bit_generator = numpy.random.PCG64(0)
    return generator
