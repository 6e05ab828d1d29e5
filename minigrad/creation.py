"""Ways to make tensors: from data, filled, ranges and random draws (seeded by manual_seed)."""
from . import backend as _backend
from .tensor import Tensor, get_default_dtype


def _size(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        return tuple(size[0])
    return tuple(size)


def _dtype(dtype):
    return get_default_dtype() if dtype is None else _backend.dtype(dtype)


def _make(array, backend, requires_grad):
    tensor = Tensor._make(array, backend)
    return tensor.requires_grad_() if requires_grad else tensor


def tensor(data, dtype=None, requires_grad=False, device=None):
    """A new leaf tensor from Python data or an array (Python floats become float32).

    Always a copy, as torch.tensor: later writes to `data` (or to the tensor) do not leak across.
    """
    source = data.data if isinstance(data, Tensor) else data
    result = Tensor(source, dtype=dtype, device=device)
    if result.data is source or getattr(result.data, "base", None) is not None:
        result.data = result.data.copy()
    return result.requires_grad_() if requires_grad else result


def full(size, fill_value, dtype=None, device=None, requires_grad=False):
    backend = _backend.get_backend(device)
    if dtype is None and isinstance(fill_value, bool):
        dtype = bool
    elif dtype is None and isinstance(fill_value, int):
        dtype = _backend.dtype('int64')
    return _make(backend.xp.full(_size((size,)), fill_value, dtype=_dtype(dtype)), backend, requires_grad)


def zeros(*size, dtype=None, device=None, requires_grad=False):
    backend = _backend.get_backend(device)
    return _make(backend.xp.zeros(_size(size), dtype=_dtype(dtype)), backend, requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False):
    backend = _backend.get_backend(device)
    return _make(backend.xp.ones(_size(size), dtype=_dtype(dtype)), backend, requires_grad)


def zeros_like(x, dtype=None, device=None, requires_grad=False):
    return zeros(x.shape, dtype=dtype or x.dtype, device=device or x.device, requires_grad=requires_grad)


def ones_like(x, dtype=None, device=None, requires_grad=False):
    return ones(x.shape, dtype=dtype or x.dtype, device=device or x.device, requires_grad=requires_grad)


def full_like(x, fill_value, dtype=None, device=None, requires_grad=False):
    return full(x.shape, fill_value, dtype=dtype or x.dtype, device=device or x.device,
                requires_grad=requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    """Like torch.arange: integers give int64, any float gives the default float dtype."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        is_int = all(isinstance(v, int) for v in (start, end, step))
        dtype = _backend.dtype('int64') if is_int else get_default_dtype()
    backend = _backend.get_backend(device)
    return _make(backend.xp.arange(start, end, step, dtype=_backend.dtype(dtype)), backend, requires_grad)


def eye(n, m=None, dtype=None, device=None, requires_grad=False):
    backend = _backend.get_backend(device)
    return _make(backend.xp.eye(n, m, dtype=_dtype(dtype)), backend, requires_grad)


def rand(*size, dtype=None, device=None, requires_grad=False):
    """Uniform on [0, 1)."""
    backend = _backend.get_backend(device)
    return _make(backend.rand(_size(size), _dtype(dtype)), backend, requires_grad)


def randn(*size, dtype=None, device=None, requires_grad=False):
    """Standard normal."""
    backend = _backend.get_backend(device)
    return _make(backend.randn(_size(size), _dtype(dtype)), backend, requires_grad)


def randint(low, high=None, size=(), dtype=None, device=None):
    """Integers in [low, high) (int64 unless told otherwise).

    As torch.randint: randint(high, size) and randint(low, high, size) (a tuple or list in
    the second place is the size).
    """
    if isinstance(high, (tuple, list)):
        low, high, size = 0, low, high
    elif high is None:
        low, high = 0, low
    backend = _backend.get_backend(device)
    dtype = _backend.dtype(_backend.dtype('int64') if dtype is None else dtype)
    return Tensor._make(backend.randint(low, high, tuple(size), dtype), backend)


def empty_param(shape, dtype=None, device=None):
    """Uninitialised storage for a parameter (zeros here: an initialiser overwrites it)."""
    return zeros(shape, dtype=dtype, device=device)
