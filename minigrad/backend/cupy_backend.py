"""The CuPy backend: one NVIDIA GPU. CuPy is imported only when a "cuda" device is first used,
so that CPU-only machines never need it; `cuda_is_available` and `cuda_device_count` ask it too."""
from .host import host_numpy
from .numpy_backend import Backend


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
        return self.rand(shape, host_numpy.float32) >= p

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


def cuda_device_count():
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount()
    except Exception:  # no CuPy, or no driver
        return 0


def cuda_is_available():
    """True when CuPy imports and sees at least one GPU."""
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # ImportError, or CUDA driver errors of many kinds
        return False



def nccl_module():
    """CuPy's NCCL bindings (cupy.cuda.nccl), or None when CuPy or its NCCL is missing."""
    try:
        from cupy.cuda import nccl

        return nccl if getattr(nccl, "available", True) else None
    except Exception:  # ImportError, or a CuPy built without NCCL
        return None


def cuda_runtime():
    """cupy.cuda: devices, streams and events, for minigrad.distributed's NCCL collectives."""
    import cupy

    return cupy.cuda
