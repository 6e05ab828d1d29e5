"""minigrad.cuda: is there a GPU that CuPy can use, how many, and waiting for it.

    minigrad.cuda.is_available()   # False without CuPy or without a driver/GPU; never raises
    minigrad.cuda.device_count()
    minigrad.cuda.synchronize()    # GPU work is queued asynchronously: wait before reading a clock
"""
from .backend import cuda_is_available as is_available  # noqa: F401
from .backend import get_backend


def device_count():
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount()
    except Exception:  # no CuPy, or no driver
        return 0


def synchronize(device="cuda"):
    """Block until every kernel queued on `device` has finished (for honest timings)."""
    get_backend(device).synchronize()
