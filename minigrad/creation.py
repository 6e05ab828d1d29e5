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


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False):
    """`steps` evenly spaced values from start to end, both included (the default float dtype)."""
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"linspace: steps must be a non-negative int, got {steps!r}")
    backend = _backend.get_backend(device)
    values = backend.xp.linspace(start, end, steps, dtype=_backend.dtype("float64"))  # then rounded once
    return _make(values.astype(_dtype(dtype)), backend, requires_grad)


def eye(n, m=None, dtype=None, device=None, requires_grad=False):
    backend = _backend.get_backend(device)
    return _make(backend.xp.eye(n, m, dtype=_dtype(dtype)), backend, requires_grad)


def from_numpy(ndarray):
    """A CPU tensor that shares the NumPy array's memory (writes through either are seen by both)."""
    if not isinstance(ndarray, _backend.host_numpy.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(ndarray).__name__}")
    if ndarray.dtype.kind not in "biuf":
        raise TypeError(f"from_numpy: dtype {ndarray.dtype} is not supported (bool, integers and floats are)")
    return Tensor(ndarray, device="cpu")


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


def multinomial(input, num_samples, replacement=False, *, generator=None):
    """Draw `num_samples` category indices per row of `input` (1-D or 2-D non-negative weights, which need
    not sum to 1), as torch.multinomial, from minigrad's generator: manual_seed makes the draws repeat.

    With replacement, each draw is an inverse-CDF lookup of a uniform number. Without replacement the
    draw is exact sequential sampling (each next index with probability proportional to its weight among
    those not yet drawn): every category gets an exponential waiting time of rate equal to its weight,
    and the first `num_samples` to arrive are drawn, in the order they arrive; as in PyTorch, once the
    categories of nonzero weight run out, those of weight 0 follow (here in index order). Bad weights
    (negative, infinite, NaN, a row of zeros) are refused on the CPU; on a GPU they are not checked,
    since that would make the host wait for the device.
    """
    if generator is not None:
        raise TypeError("multinomial: minigrad has no Generator objects; seed the draws with minigrad.manual_seed")
    if input.ndim not in (1, 2) or input.dtype.kind != "f":
        raise ValueError(f"multinomial: expected a 1-D or 2-D floating-point tensor of weights, got shape "
                         f"{input.shape} and dtype {input.dtype}")
    categories = input.shape[-1]
    if num_samples <= 0 or (not replacement and num_samples > categories):
        raise ValueError(f"multinomial: cannot draw {num_samples} samples from {categories} categories "
                         f"{'with' if replacement else 'without'} replacement")
    backend = input._backend
    xp = backend.xp
    weights = input.data.reshape(-1, categories).astype(_backend.dtype("float64"))
    if xp is _backend.host_numpy:
        _check_weights(weights)
    rows = weights.shape[0]
    if replacement:
        ends = xp.cumsum(weights, axis=-1)
        targets = backend.rand((rows, num_samples), _backend.dtype("float64")) * ends[:, -1:]
        # the first category whose running total passes the target (a weight of 0 spans no target)
        samples = xp.stack([xp.searchsorted(ends[row], targets[row], side="right") for row in range(rows)])
        samples = xp.minimum(samples, categories - 1)  # only reached by an all-zero row, which the CPU refuses
    else:
        waits = -xp.log1p(-backend.rand(weights.shape, weights.dtype)) / xp.where(weights > 0, weights, 1)
        waits = xp.where(weights > 0, waits, xp.inf)
        samples = xp.argsort(waits, axis=-1, kind="stable")[:, :num_samples]
    samples = samples.astype(_backend.dtype("int64")).reshape(input.shape[:-1] + (num_samples,))
    return Tensor._make(samples, backend)


def _check_weights(weights):
    """The checks torch makes (on host arrays only)."""
    if not _backend.host_numpy.isfinite(weights).all() or (weights < 0).any():
        raise ValueError("multinomial: the weights must be finite and non-negative")
    if (weights.sum(axis=-1) <= 0).any():
        raise ValueError("multinomial: a row of weights sums to zero")
