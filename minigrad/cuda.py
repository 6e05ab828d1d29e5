"""minigrad.cuda: is there a GPU that CuPy can use, how many, and waiting for it.

    minigrad.cuda.is_available()   # False without CuPy or without a driver/GPU; never raises
    minigrad.cuda.device_count()
    minigrad.cuda.synchronize()    # GPU work is queued asynchronously: wait before reading a clock
"""
from .backend import cuda_device_count as device_count  # noqa: F401
from .backend import cuda_is_available as is_available  # noqa: F401
from .backend import get_backend


def synchronize(device="cuda"):
    """Block until every kernel queued on `device` has finished (for honest timings)."""
    get_backend(device).synchronize()
