"""The registry of devices: a device name ("cpu", "cuda:1", a test's "fakegpu:0") -> its Backend,
made on first use, and the process-wide choices about devices (the default one, the seeds)."""
import os

from . import seeds
from .cupy_backend import CupyBackend
from .host import host_numpy
from .numpy_backend import Backend

_backends = {}          # "cpu", "cuda:0", ... -> Backend
_factories = {"cpu": lambda device: Backend(device), "cuda": CupyBackend}
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
    if isinstance(array, host_numpy.ndarray):
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


def manual_seed(seed):
    """Reseed every device's generator: all random draws of minigrad become reproducible."""
    seeds.set_seed_for_all(seed)
    for backend in _backends.values():
        backend.seed(int(seed))


def get_rng_state():
    """States of every device generator created so far (for checkpoints)."""
    return {name: backend.get_rng_state() for name, backend in _backends.items()}


def set_rng_state(states):
    for name, state in states.items():
        if state is not None:
            get_backend(name).set_rng_state(state)
