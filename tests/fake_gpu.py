"""A simulated GPU for the test suite: proves the CuPy code path on machines without a GPU.

minigrad runs the same op code on NumPy ("cpu") and CuPy ("cuda"). Without a GPU
the CuPy path would never run in CI, and the mistakes it would catch -- a host
NumPy array slipped into a device op, `numpy.asarray` on a device array, a Python
`if` on an array value -- would ship unseen. This module registers a device type
"fakegpu" whose arrays follow CuPy's rules, strictly:

- `FakeArray` wraps a NumPy array (it is *not* an ndarray subclass). It refuses
  implicit conversion to NumPy (`__array__` raises TypeError, as CuPy does);
  `.get()` is the explicit copy back to the host.
- Any operator or method of a FakeArray, and any function of the fake `xp`
  module, given a raw `numpy.ndarray` operand raises TypeError (CuPy's
  "Unsupported type"). Python and NumPy scalars are fine.
- NumPy functions applied to a FakeArray (`numpy.exp(a)`, `numpy.sum(a)`) raise
  TypeError: library code must go through the backend's `xp`.
- Reductions and integer indexing give 0-d FakeArrays, as CuPy does, never
  Python or NumPy scalars.
- The fake `xp` has no `random`: random draws must go through the Backend
  (rand/randn/randint) so that `minigrad.manual_seed` governs them.
- `scatter_add` accepts only the dtypes CUDA's atomicAdd does (as cupyx's).

Host traffic is counted in `stats` rather than forbidden, because CuPy allows
it: "uploads" (host data made into a device array), "downloads" (`.get()`,
`.item()`, `.tolist()`), and "syncs" (the implicit ones: `bool()`, `int()`,
`float()` of a device array, and boolean-mask indexing, whose output size the
host must wait for). `no_host_traffic()` turns downloads and syncs into errors
inside a block, to prove that a training step never waits on the device.
"""
import contextlib
import operator
import types
from collections import Counter

import numpy
import pytest

import minigrad
from minigrad.backend import Backend, get_backend, register_device_type

stats = Counter()
_strict = []  # non-empty inside no_host_traffic()


class HostTrafficError(RuntimeError):
    """Raised inside no_host_traffic() when device data would reach the host."""


def _host_access(kind, what):
    if _strict:
        raise HostTrafficError(f"{what}: device-to-host {kind} inside no_host_traffic()")
    stats[kind] += 1


@contextlib.contextmanager
def no_host_traffic():
    """Inside this block, any download or implicit sync of a fake-GPU array raises HostTrafficError."""
    _strict.append(True)
    try:
        yield
    finally:
        _strict.pop()


# -- moving between the fake device and the host ------------------------------------------
class _FakeCudaDevice:
    """What `array.device` gives on CuPy: an object with the device number in `.id`."""

    def __init__(self, device_id):
        self.id = device_id

    def __repr__(self):
        return f"<FakeCUDA Device {self.id}>"


def _unwrap(value, device_id):
    """A FakeArray's NumPy payload, for the simulated kernels; raw host arrays are refused."""
    if isinstance(value, FakeArray):
        if value._device_id != device_id:
            raise ValueError(f"array on fake device {value._device_id} used in an op on fake device {device_id}")
        return value._host
    if isinstance(value, numpy.ndarray):
        raise TypeError(f"Unsupported type {type(value)}: a host NumPy array was given to an op on the "
                        "fake GPU (move it with the backend's asarray, or use a Tensor on the same device)")
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return type(value)(_unwrap(item, device_id) for item in value)
    if isinstance(value, slice):
        return slice(*(_unwrap(part, device_id) for part in (value.start, value.stop, value.step)))
    return value


def _wrap(value, device_id):
    """NumPy results back as FakeArrays; NumPy scalars become 0-d arrays as CuPy's reductions give."""
    if isinstance(value, numpy.ndarray):
        return FakeArray(value, device_id)
    if isinstance(value, numpy.generic):
        return FakeArray(numpy.asarray(value), device_id)
    if type(value) in (list, tuple):
        return type(value)(_wrap(item, device_id) for item in value)
    return value


def _upload(data, dtype, device_id, copy):
    """cupy.asarray / cupy.array: host data (or a device array) as a device array."""
    if isinstance(data, FakeArray):
        host = data._host
        return FakeArray(host.astype(dtype) if copy or (dtype is not None and host.dtype != dtype) else host,
                         device_id)
    if isinstance(data, (list, tuple)):  # may hold device arrays (stack them) or host numbers
        data = _unwrap_elements(data)
    stats["uploads"] += 1
    return FakeArray(numpy.array(data, dtype=dtype, copy=True), device_id)


def _unwrap_elements(data):
    return [_unwrap_elements(item) if isinstance(item, (list, tuple)) else
            (item._host if isinstance(item, FakeArray) else item) for item in data]


# -- the array ---------------------------------------------------------------------------
def _binary(op, reflected=False):
    def method(self, other):
        other = _unwrap(other, self._device_id)
        result = op(other, self._host) if reflected else op(self._host, other)
        return _wrap(result, self._device_id)
    return method


def _inplace(op):
    def method(self, other):
        op(self._host, _unwrap(other, self._device_id))  # NumPy's in-place operators write into _host
        return self
    return method


def _unary(op):
    def method(self):
        return _wrap(op(self._host), self._device_id)
    return method


class FakeArray:
    """A device array of the simulated GPU (a NumPy array inside, never handed out implicitly)."""

    __slots__ = ("_host", "_device_id")
    __array_ufunc__ = None  # numpy ufuncs and `ndarray <op> FakeArray` refuse instead of converting

    def __init__(self, host_array, device_id=0):
        assert isinstance(host_array, numpy.ndarray)
        self._host = host_array
        self._device_id = device_id

    # -- what CuPy forbids or makes explicit -----------------------------------------------
    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. "
                        "Please use `.get()` to construct a NumPy array explicitly.")

    def __array_function__(self, func, types, args, kwargs):
        raise TypeError(f"numpy.{func.__name__} was called on a fake-GPU array: library code must use "
                        "the backend's xp (tensor.xp / Function.xp), never NumPy directly")

    def get(self):
        """The explicit device-to-host copy."""
        _host_access("downloads", "get()")
        return self._host.copy()

    def item(self):
        _host_access("downloads", "item()")
        return self._host.item()

    def tolist(self):
        _host_access("downloads", "tolist()")
        return self._host.tolist()

    def _scalar(self, convert, name):
        _host_access("syncs", f"{name}() of a device array")
        if self._host.size != 1:
            raise TypeError(f"only size-1 arrays can be converted to Python scalars (got shape {self.shape})")
        return convert(self._host.item())

    def __bool__(self):
        return self._scalar(bool, "bool")

    def __int__(self):
        return self._scalar(int, "int")

    def __float__(self):
        return self._scalar(float, "float")

    def __index__(self):
        if self._host.dtype.kind not in "iub":
            raise TypeError("only integer arrays can be used as an index")
        return self._scalar(int, "index")

    # -- what it is ------------------------------------------------------------------------
    @property
    def device(self):
        return _FakeCudaDevice(self._device_id)

    @property
    def shape(self):
        return self._host.shape

    @property
    def dtype(self):
        return self._host.dtype

    @property
    def ndim(self):
        return self._host.ndim

    @property
    def size(self):
        return self._host.size

    def __len__(self):
        return len(self._host)

    def __iter__(self):
        return (_wrap(self._host[i], self._device_id) for i in range(len(self._host)))

    def __repr__(self):
        return f"fakegpu:{self._device_id}:" + repr(self._host)

    __hash__ = None

    def __getattr__(self, name):
        """Every other ndarray method and attribute, with operands and results kept on the device."""
        if name.startswith("__") or name in ("ctypes", "data", "flat", "tobytes", "tofile", "dump", "dumps",
                                             "base", "view"):
            raise AttributeError(f"FakeArray has no attribute {name!r}")
        attribute = getattr(self._host, name)
        if not callable(attribute):
            return _wrap(attribute, self._device_id)
        device_id = self._device_id

        def method(*args, **kwargs):
            result = attribute(*_unwrap(args, device_id), **{k: _unwrap(v, device_id) for k, v in kwargs.items()})
            return self if result is self._host else _wrap(result, device_id)
        return method

    # -- indexing ---------------------------------------------------------------------------
    def _index(self, index):
        index = _unwrap(index, self._device_id)
        parts = index if isinstance(index, tuple) else (index,)
        if any(isinstance(p, numpy.ndarray) and p.dtype == bool for p in parts):
            _host_access("syncs", "boolean-mask indexing")  # CuPy must count the True values on the host
        return index

    def __getitem__(self, index):
        return _wrap(self._host[self._index(index)], self._device_id)

    def __setitem__(self, index, value):
        self._host[self._index(index)] = _unwrap(value, self._device_id)


for _name, _op in [("add", operator.add), ("sub", operator.sub), ("mul", operator.mul),
                   ("truediv", operator.truediv), ("floordiv", operator.floordiv), ("mod", operator.mod),
                   ("pow", operator.pow), ("matmul", operator.matmul), ("and", operator.and_),
                   ("or", operator.or_), ("xor", operator.xor)]:
    setattr(FakeArray, f"__{_name}__", _binary(_op))
    setattr(FakeArray, f"__r{_name}__", _binary(_op, reflected=True))
    setattr(FakeArray, f"__i{_name}__", _inplace(getattr(operator, f"i{_name}")))
for _name in ("eq", "ne", "lt", "le", "gt", "ge"):
    setattr(FakeArray, f"__{_name}__", _binary(getattr(operator, _name)))
for _name, _op in [("neg", operator.neg), ("pos", operator.pos), ("abs", operator.abs),
                   ("invert", operator.invert)]:
    setattr(FakeArray, f"__{_name}__", _unary(_op))


# -- the array module ----------------------------------------------------------------------
class _DeviceFunction:
    """A NumPy function run as a 'kernel' of the fake device (ufunc methods such as .reduce too)."""

    def __init__(self, function, device_id):
        self._function = function
        self._device_id = device_id

    def __call__(self, *args, **kwargs):
        device_id = self._device_id
        result = self._function(*_unwrap(args, device_id), **{k: _unwrap(v, device_id) for k, v in kwargs.items()})
        return _wrap(result, device_id)

    def __getattr__(self, name):
        attribute = getattr(self._function, name)
        return _DeviceFunction(attribute, self._device_id) if callable(attribute) else attribute


class FakeXP(types.ModuleType):
    """The fake device's `xp`: NumPy's namespace, with every function kept on the device."""

    ndarray = FakeArray

    def __init__(self, device_id, namespace=numpy):
        super().__init__(f"fakegpu{device_id}.{namespace.__name__}")
        self._device_id = device_id
        self._namespace = namespace

    def asarray(self, data, dtype=None):
        return _upload(data, dtype, self._device_id, copy=False)

    def array(self, data, dtype=None, copy=True):
        return _upload(data, dtype, self._device_id, copy=copy)

    def get_array_module(self, *arrays):
        return self

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        if name == "random":
            raise AttributeError("the fake GPU's xp has no `random`: draw through the Backend "
                                 "(rand/randn/randint) so that minigrad.manual_seed governs every draw")
        value = getattr(self._namespace, name)
        if isinstance(value, (type, numpy.dtype)):  # dtypes and scalar types are shared with NumPy
            return value
        if isinstance(value, types.ModuleType):  # xp.linalg, xp.fft, ...
            return FakeXP(self._device_id, value)
        if callable(value):
            return _DeviceFunction(value, self._device_id)
        return value  # constants: pi, inf, newaxis


# -- the backend ---------------------------------------------------------------------------
_SCATTER_ADD_DTYPES = {numpy.dtype(t) for t in ("float16", "float32", "float64", "int32", "uint32", "uint64")}


class FakeGpuBackend(Backend):
    """A Backend for "fakegpu:N": CuPy's rules, NumPy's arithmetic (so results match the CPU)."""

    def __init__(self, device):
        self.device_id = int(device.partition(":")[2] or 0)
        self.xp = FakeXP(self.device_id)
        self.array_type = FakeArray
        super().__init__(device)

    def asarray(self, data, dtype=None):
        return self.xp.asarray(data, dtype=dtype)

    def to_host(self, array):
        return array.get()

    def scatter_add(self, target, index, values):
        """cupyx.scatter_add: integer-array scatters need a dtype CUDA's atomicAdd supports."""
        if numpy.dtype(values.dtype) not in _SCATTER_ADD_DTYPES:
            raise TypeError(f"scatter_add does not support {values.dtype} on the GPU")
        numpy.add.at(target._host, _unwrap(index, self.device_id), _unwrap(values, self.device_id))

    def scatter_add_rows(self, target, rows, values, unwanted_row=None):
        self.scatter_add(target, rows, values)  # as CuPy's backend does

    def parallel_for(self, kernel, rows, row_size, passes=1):
        kernel(0, rows)  # as CuPy's backend does: one launch over all rows

    def parallel_for_each(self, jobs, passes=1):
        for kernel, rows, _ in jobs:
            kernel(0, rows)

    def erf(self, x):
        return FakeArray(Backend.erf(self, x._host), self.device_id)

    # A device generator: the draws are made on the host here but never leave the device as NumPy.
    def rand(self, shape, dtype):
        return FakeArray(super().rand(shape, dtype), self.device_id)

    def randn(self, shape, dtype):
        return FakeArray(super().randn(shape, dtype), self.device_id)

    def randint(self, low, high, shape, dtype):
        return FakeArray(super().randint(low, high, shape, dtype), self.device_id)

    def keep_mask(self, shape, p):
        return FakeArray(super().keep_mask(shape, p), self.device_id)

    def get_rng_state(self):
        return None  # like CuPy's generators: not serialisable

    def set_rng_state(self, state):
        pass


def register():
    """Make "fakegpu" / "fakegpu:N" a minigrad device (idempotent)."""
    register_device_type("fakegpu", FakeGpuBackend)


register()


def device_params():
    """The devices a device-parametrized test runs on: cpu, the fake GPU, and a real GPU when present."""
    return ["cpu", "fakegpu", pytest.param("cuda", marks=[
        pytest.mark.gpu,
        pytest.mark.skipif(not minigrad.cuda.is_available(), reason="needs CuPy and an NVIDIA GPU "
                           "(minigrad.cuda.is_available() is False)")])]


def array_type(device):
    return get_backend(device).array_type
