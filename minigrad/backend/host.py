"""The host side: dtypes and host arrays.

NumPy is also the host's array library: dtypes are NumPy dtypes on every device (CuPy uses them
too), data from Python becomes a host array before it goes to a device, and printing,
gradcheck's finite differences, the CPU kernels' own bookkeeping and checkpoints work on host
arrays. Code outside the backend reaches NumPy through here.
"""
import numpy

host_numpy = numpy
dtype = numpy.dtype
host_scalar_types = (numpy.ndarray, numpy.generic)


def host_array(data, dtype=None):
    """Python data (lists, numbers, NumPy arrays) as a host NumPy array."""
    return numpy.asarray(data, dtype=dtype)


def format_host_array(array, **options):
    return numpy.array2string(array, **options)
