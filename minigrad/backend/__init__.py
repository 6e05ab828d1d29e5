"""Backends: the one place that knows which array library holds a tensor's data.

Every op asks its tensor's backend for `xp` (the array module: NumPy or CuPy) and writes the same
code for both. Whatever differs between the libraries -- moving arrays to and from the host,
scatter-add, random generators, `erf` -- lives here and nowhere else, so that the GPU path is the
CPU path. Only this package imports NumPy or CuPy.

A device is named by a string: "cpu" (NumPy) or "cuda" / "cuda:N" (CuPy).
Tests register a simulated device that follows CuPy's rules (see tests/fake_gpu.py).

    registry.py       device names -> backends, the default device, seeds and generator states
    numpy_backend.py  Backend: NumPy on the CPU, and the base every backend overrides
    cupy_backend.py   CupyBackend: CuPy on one NVIDIA GPU (imported only when used)
    host.py           host arrays and dtypes, for code outside the backend
    seeds.py          the seeds manual_seed gave, read by backends made later
    cpu_tuning.py     tune_cpu(): malloc and OpenBLAS settings, made only when asked for

minigrad's CPU thread pool and the dropout-mask kernel live in minigrad/kernels/.
"""
from ..kernels.thread_pool import get_num_threads, set_num_threads
from .cpu_tuning import tune_cpu
from .cupy_backend import CupyBackend, cuda_device_count, cuda_is_available
from .host import dtype, format_host_array, host_array, host_numpy, host_scalar_types
from .numpy_backend import Backend
from .registry import (backend_of_array, canonical_device, get_backend, get_default_device, get_rng_state,
                       manual_seed, register_device_type, set_default_device, set_rng_state)

__all__ = ["Backend", "CupyBackend", "backend_of_array", "canonical_device", "cuda_device_count", "cuda_is_available",
           "dtype", "format_host_array", "get_backend", "get_default_device", "get_num_threads", "get_rng_state",
           "host_array", "host_numpy", "host_scalar_types", "manual_seed", "register_device_type",
           "set_default_device", "set_num_threads", "set_rng_state", "tune_cpu"]
