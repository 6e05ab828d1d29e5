"""minigrad.cuda.is_available(): is there a GPU that CuPy can use?"""
from .backend import cuda_is_available as is_available  # noqa: F401


def device_count():
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount()
    except Exception:  # no CuPy, or no driver
        return 0
