"""Backends: the one place that knows which array library holds a tensor's data.

Every op asks its tensor's backend for `xp` (the array module: NumPy or CuPy) and
writes the same code for both. Whatever differs between the libraries -- moving
arrays to and from the host, scatter-add, random generators, `erf` -- lives here
and nowhere else, so that the GPU path is the CPU path.

A device is named by a string: "cpu" (NumPy) or "cuda" / "cuda:N" (CuPy).
Tests register a simulated device that follows CuPy's rules (see tests/fake_gpu.py).
"""
import math
import os

import numpy

_DEFAULT_SEED = 0


class Backend:
    """One array library on one device: how to create, move, scatter and draw arrays."""

    xp = numpy
    array_type = numpy.ndarray

    def __init__(self, device="cpu"):
        self.device = device
        self.rng = self._make_generator(_seed_for(device))

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

    def scatter_add_rows(self, target, rows, values):
        """target[rows[i]] += values[i] for 1-D `rows` (an embedding's gradient), repeats adding up.

        Sorting the rows and summing each run of equal ids with add.reduceat is several times
        faster than the general add.at, and deterministic.
        """
        if rows.size == 0:
            return
        order = rows.argsort(kind="stable")
        sorted_rows = rows[order]
        starts = numpy.flatnonzero(numpy.r_[True, sorted_rows[1:] != sorted_rows[:-1]])
        target[sorted_rows[starts]] += numpy.add.reduceat(values[order], starts, axis=0)

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
        """A bool array whose elements are True with probability 1 - p (dropout's mask)."""
        # 32 raw random bits per element compared with p * 2**32 -- the same distribution as
        # comparing a uniform float with p (to within 2**-32), at two thirds of the cost.
        size = int(numpy.prod(shape))
        bits = self.rng.bit_generator.random_raw((size + 1) // 2).view(numpy.uint32)[:size]
        threshold = numpy.uint32(min(round(p * 2 ** 32), 2 ** 32 - 1))
        return (bits >= threshold).reshape(shape)

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

    def scatter_add_rows(self, target, rows, values):
        self.scatter_add(target, rows, values)  # atomic adds are the fast way on a GPU

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
