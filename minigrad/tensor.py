"""The Tensor: an array, plus what autograd needs to send gradients back to it.

A tensor holds a backend array (`.data`), and, when it was produced by a recorded
op, the graph node that made it (`.grad_fn`). Leaves made by the user with
`requires_grad=True` collect gradients in `.grad` when `backward()` runs.

The math lives in `minigrad.ops`; the methods here only route to it, so that
`x.sum(dim=1)` and `minigrad.sum(x, dim=1)` are one and the same.
"""

from . import backend as _backend_module

_dtype = _backend_module.dtype
float16, float32, float64 = _dtype("float16"), _dtype("float32"), _dtype("float64")
int32, int64, bool_ = _dtype("int32"), _dtype("int64"), _dtype("bool")
_default_dtype = float32


def set_default_dtype(dtype):
    """The dtype of tensors made from Python floats and of random draws (float32 unless changed)."""
    global _default_dtype
    dtype = _dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"the default dtype must be a floating type, got {dtype}")
    _default_dtype = dtype


def get_default_dtype():
    return _default_dtype


class Device(str):
    """A device name that also reads like torch.device: `x.device == "cpu"`, `x.device.type`."""

    @property
    def type(self):
        return self.partition(":")[0]

    @property
    def index(self):
        return int(self.partition(":")[2]) if ":" in self else None


def _is_float(dtype):
    return dtype.kind == "f"


def _host_array(data, dtype):
    """Python data -> NumPy array with PyTorch's dtype rules (Python floats -> float32)."""
    array = _backend_module.host_array(data, dtype=dtype)
    if dtype is None and array.dtype == float64 and not isinstance(data, _backend_module.host_scalar_types):
        array = array.astype(_default_dtype)
    elif dtype is None and array.dtype.kind in "iu" and not isinstance(data, _backend_module.host_scalar_types):
        array = array.astype(int64)
    return array


class _VersionCounter:
    """How many in-place writes the memory behind one or more tensors has seen.

    Tensors that share memory (a view, `detach()`, a state_dict entry) share one counter,
    so a write through any of them is seen by a graph node that saved another.
    """

    __slots__ = ("value",)

    def __init__(self):
        self.value = 0


class _InferenceCounter:
    """The counter of every inference tensor (made under minigrad.inference_mode()): it counts nothing,
    so, as in PyTorch, such a tensor cannot be saved for backward nor, outside inference mode, be
    written in place or made to require grad."""

    __slots__ = ()

    @property
    def value(self):
        raise RuntimeError("Inference tensors do not track version counter: a tensor made under "
                           "minigrad.inference_mode() cannot be saved for backward; clone() it outside inference "
                           "mode to get a normal tensor")


_INFERENCE = _InferenceCounter()
_new_counter = None  # the counter new tensors start with: _INFERENCE inside inference_mode(), else made on need


def _set_inference_mode(enabled):
    global _new_counter
    _new_counter = _INFERENCE if enabled else None


def _is_inference_mode():
    return _new_counter is _INFERENCE


def _refuse_inplace_on_inference_tensor():
    if _new_counter is not _INFERENCE:
        raise RuntimeError("Inplace update to inference tensor outside InferenceMode is not allowed. You can make "
                           "a clone to get a normal tensor before doing inplace update.")


class Tensor:
    __slots__ = ("data", "grad", "grad_fn", "_requires_grad", "_backend", "_version_counter", "_retains_grad",
                 "__weakref__")
    __array_priority__ = 1000  # so that `ndarray * tensor` calls Tensor.__rmul__

    def __init__(self, data, dtype=None, requires_grad=False, device=None):
        if dtype is not None:
            dtype = _dtype(dtype)
        original = data if isinstance(data, Tensor) else None
        if original is not None:
            data = data.data
        source = _backend_module.backend_of_array(data)
        target = _backend_module.get_backend(device if device is not None or source is None else source)
        if source is None:
            array = target.asarray(_host_array(data, dtype))
        elif source is target:
            array = data.astype(dtype, copy=False) if dtype is not None else data
        else:  # an explicit move, asked for by giving a device
            array = target.asarray(source.to_host(data), dtype=dtype)
        self.data = array
        self.grad = None
        self.grad_fn = None
        self._backend = target
        self._version_counter = _new_counter
        if original is not None and array is original.data:
            # Wrapping another tensor's very array (as Parameter(t) does) shares its memory, so its counter too.
            self._version_counter = original._shared_version_counter()
        self._retains_grad = False
        self._requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _make(cls, array, backend, grad_fn=None):
        """Fast constructor for op outputs: no conversion, no checks."""
        tensor = object.__new__(cls)
        tensor.data = array
        tensor.grad = None
        tensor.grad_fn = grad_fn
        tensor._requires_grad = grad_fn is not None
        tensor._backend = backend
        tensor._version_counter = _new_counter  # None (made on first need: most tensors are never viewed nor
        # written), or inside inference_mode() the one counter of all inference tensors
        tensor._retains_grad = False
        return tensor

    # -- versions: in-place writes are counted, so that stale saved values are caught ----------
    @property
    def _version(self):
        counter = self._version_counter
        return 0 if counter is None else counter.value

    def _shared_version_counter(self):
        """This tensor's counter, created on first use, to hand to a tensor that shares its memory."""
        counter = self._version_counter
        if counter is None:
            counter = self._version_counter = _VersionCounter()
        return counter

    # -- what it is ----------------------------------------------------------------------
    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self):
        return self.data.ndim

    def dim(self):
        return self.data.ndim

    def size(self, dim=None):
        return self.data.shape if dim is None else self.data.shape[dim]

    def numel(self):
        return int(self.data.size)

    def __len__(self):
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    @property
    def device(self):
        return Device(self._backend.device)

    @property
    def backend(self):
        return self._backend

    @property
    def xp(self):
        """The array module (NumPy or CuPy) that holds this tensor's data."""
        return self._backend.xp

    def is_inference(self):
        """True for a tensor made under minigrad.inference_mode() (see minigrad/autograd/grad_mode.py)."""
        return self._version_counter is _INFERENCE

    @property
    def is_leaf(self):
        return self.grad_fn is None

    @property
    def requires_grad(self):
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag):
        self.requires_grad_(flag)

    def requires_grad_(self, requires_grad=True):
        if requires_grad and not _is_float(self.data.dtype):
            raise RuntimeError(f"only floating-point tensors can require gradients, got dtype {self.data.dtype}")
        if requires_grad and self._version_counter is _INFERENCE and _new_counter is not _INFERENCE:
            raise RuntimeError("Setting requires_grad=True on inference tensor outside InferenceMode is not allowed.")
        if not requires_grad and self.grad_fn is not None:
            raise RuntimeError("requires_grad can only be switched off on leaf tensors; use detach()")
        self._requires_grad = bool(requires_grad)
        return self

    def retain_grad(self):
        """Keep `.grad` on this non-leaf tensor after backward (leaves always keep it)."""
        if self.grad_fn is not None:
            self._retains_grad = True
            self.grad_fn.retain_output_grad(self)
        return self

    def register_hook(self, hook):
        """Call hook(grad) whenever a gradient for this tensor is computed; a Tensor it returns is used
        instead. Returns a handle whose remove() takes the hook away (see minigrad/autograd/hooks.py)."""
        from .autograd.hooks import register_tensor_hook

        return register_tensor_hook(self, hook)

    def register_post_accumulate_grad_hook(self, hook):
        """Call hook(self) after a backward has added this leaf's gradient into .grad (as soon as
        it is whole, while the rest of the backward goes on). Returns a removable handle."""
        from .autograd.hooks import register_post_accumulate_grad_hook

        return register_post_accumulate_grad_hook(self, hook)

    # -- autograd ----------------------------------------------------------------------
    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        """Accumulate d(self)/d(leaf) into every leaf's `.grad` (see minigrad.autograd)."""
        from .autograd import backward

        backward(self, gradient, retain_graph=retain_graph, create_graph=create_graph, inputs=inputs)

    def detach(self):
        """The same data, cut from the graph (and the same version counter: writes to it are seen)."""
        tensor = Tensor._make(self.data, self._backend)
        tensor._version_counter = self._shared_version_counter()
        return tensor

    def detach_(self):
        self.grad_fn = None
        self._requires_grad = False
        return self

    # -- leaving the device ---------------------------------------------------------------
    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.data.reshape(()).item()

    def numpy(self):
        """A host NumPy array (a copy when the tensor lives on a GPU)."""
        if self._requires_grad:
            raise RuntimeError("numpy() on a tensor that requires grad: call .detach().numpy()")
        return self._backend.to_host(self.data)

    def tolist(self):
        return self._backend.to_host(self.data).tolist()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self.data.dtype.kind not in "iu":
            raise TypeError("only integer tensors can be used as an index")
        return int(self.item())

    def __bool__(self):
        if self.data.size != 1:
            raise RuntimeError(f"the truth value of a tensor with {self.data.size} elements is ambiguous")
        return bool(self.item())

    def __array__(self, dtype=None, copy=None):
        """np.asarray(tensor) shares a CPU tensor's memory, np.array(tensor) copies it (NumPy 2's
        `copy=` protocol: True always copies, False refuses to, None copies only to change dtype).
        A GPU tensor refuses (use .numpy())."""
        if self._backend.xp is not _backend_module.host_numpy:
            raise TypeError(f"implicit conversion of a {self.device} tensor to NumPy is not allowed; use .numpy()")
        array = self.data if dtype is None else self.data.astype(dtype, copy=False)
        if copy and array is self.data:
            return array.copy()
        if copy is False and array is not self.data:
            raise ValueError(f"a {self.dtype} tensor cannot become a {dtype} array without a copy (copy=False)")
        return array

    # -- moving and casting -------------------------------------------------------------
    def to(self, device=None, dtype=None):
        """to("cuda"), to("cpu"), to(minigrad.float64), to("cuda", float32): differentiable moves and casts."""
        if device is not None and not isinstance(device, (str, _backend_module.Backend)):
            device, dtype = None, device  # to(dtype)
        result = self
        if dtype is not None and _dtype(dtype) != self.dtype:
            result = ops.cast(result, _dtype(dtype))
        if device is not None and _backend_module.get_backend(device) is not self._backend:
            result = ops.to_device(result, _backend_module.get_backend(device))
        return result

    def cpu(self):
        return self.to("cpu")

    def cuda(self, index=0):
        return self.to(f"cuda:{index}")

    def float(self):
        return self.to(float32)

    def double(self):
        return self.to(float64)

    def long(self):
        return self.to(int64)

    def int(self):
        return self.to(int32)

    def bool(self):
        return self.to(bool_)

    def type_as(self, other):
        return self.to(other.dtype)

    def contiguous(self):
        return self

    def clone(self):
        return ops.clone(self)

    # -- new tensors like this one (its dtype and device unless told otherwise) -------------
    def new_zeros(self, *size, dtype=None, device=None, requires_grad=False):
        from .creation import zeros

        return zeros(*size, dtype=dtype or self.dtype, device=device or self.device, requires_grad=requires_grad)

    def new_ones(self, *size, dtype=None, device=None, requires_grad=False):
        from .creation import ones

        return ones(*size, dtype=dtype or self.dtype, device=device or self.device, requires_grad=requires_grad)

    def new_full(self, size, fill_value, dtype=None, device=None, requires_grad=False):
        from .creation import full

        return full(size, fill_value, dtype=dtype or self.dtype, device=device or self.device,
                    requires_grad=requires_grad)

    # -- in place (allowed when no graph needs the old values) ----------------------------
    def _check_inplace(self):
        from .autograd import is_grad_enabled

        if self._requires_grad and is_grad_enabled():
            raise RuntimeError("in-place change of a tensor that requires grad; wrap it in minigrad.no_grad()")
        if self._version_counter is _INFERENCE:
            _refuse_inplace_on_inference_tensor()

    def _bump_version(self):
        """Record that `.data` was written in place, so backward can refuse stale saved values."""
        counter = self._shared_version_counter()
        if counter is _INFERENCE:  # counts nothing
            _refuse_inplace_on_inference_tensor()
            return
        counter.value += 1

    def _inplace(self, values):
        self._check_inplace()
        self.data[...] = values
        self._bump_version()
        return self

    def _operand_array(self, other):
        if isinstance(other, Tensor):
            if other._backend is not self._backend:
                raise RuntimeError(f"expected tensors on one device, got {self.device} and {other.device}")
            return other.data
        return other

    def zero_(self):
        return self._inplace(0)

    def fill_(self, value):
        return self._inplace(self._operand_array(value))

    def copy_(self, source):
        return self._inplace(self._operand_array(source))

    def add_(self, other, alpha=1):
        return self._inplace(self.data + alpha * self._operand_array(other))

    def sub_(self, other, alpha=1):
        return self._inplace(self.data - alpha * self._operand_array(other))

    def mul_(self, other):
        return self._inplace(self.data * self._operand_array(other))

    def div_(self, other):
        return self._inplace(self.data / self._operand_array(other))

    def clamp_(self, min=None, max=None):
        return self._inplace(self.xp.clip(self.data, self._operand_array(min), self._operand_array(max)))

    def masked_fill_(self, mask, value):
        """In place: `value` wherever mask (a bool tensor that broadcasts to this shape) is True."""
        if not isinstance(mask, Tensor) or mask.dtype != bool_:
            raise TypeError(f"masked_fill_: the mask must be a bool tensor, got {getattr(mask, 'dtype', type(mask))}")
        if ops.broadcast_shapes(self.shape, mask.shape) != self.shape:
            raise ValueError(f"masked_fill_: a mask of shape {mask.shape} does not broadcast to the tensor's shape "
                             f"{self.shape}")
        return self._inplace(self.xp.where(self._operand_array(mask), self._operand_array(value), self.data))

    def uniform_(self, low=0.0, high=1.0):
        return self._inplace(low + (high - low) * self._backend.rand(self.shape, self.dtype))

    def normal_(self, mean=0.0, std=1.0):
        return self._inplace(mean + std * self._backend.randn(self.shape, self.dtype))

    def __setitem__(self, index, value):
        self._check_inplace()
        self.data[ops.array_index(index, self._backend)] = self._operand_array(value)
        self._bump_version()

    # -- printing ----------------------------------------------------------------------
    def __repr__(self):
        body = _backend_module.format_host_array(self._backend.to_host(self.data), separator=", ", prefix="tensor(",
                                  precision=4, threshold=100)
        extras = []
        if self.data.dtype not in (float32, int64, bool_):
            extras.append(f"dtype={self.data.dtype}")
        if self._backend.device != "cpu":
            extras.append(f"device='{self._backend.device}'")
        if self.grad_fn is not None:
            extras.append(f"grad_fn=<{type(self.grad_fn).__name__}>")
        elif self._requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + ", ".join([body] + extras) + ")"

    __hash__ = object.__hash__  # tensors are dict keys by identity; == is elementwise

    # -- arithmetic (Python scalars on either side) ---------------------------------------
    def __add__(self, other):
        return ops.add(self, other)

    def __radd__(self, other):
        return ops.add(other, self)

    def __sub__(self, other):
        return ops.sub(self, other)

    def __rsub__(self, other):
        return ops.sub(other, self)

    def __mul__(self, other):
        return ops.mul(self, other)

    def __rmul__(self, other):
        return ops.mul(other, self)

    def __truediv__(self, other):
        return ops.div(self, other)

    def __rtruediv__(self, other):
        return ops.div(other, self)

    def __pow__(self, other):
        return ops.pow(self, other)

    def __rpow__(self, other):
        return ops.pow(other, self)

    def __neg__(self):
        return ops.neg(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return ops.abs(self)

    def __matmul__(self, other):
        return ops.matmul(self, other)

    def __rmatmul__(self, other):
        return ops.matmul(other, self)

    def __eq__(self, other):
        return ops.eq(self, other)

    def __ne__(self, other):
        return ops.ne(self, other)

    def __lt__(self, other):
        return ops.lt(self, other)

    def __le__(self, other):
        return ops.le(self, other)

    def __gt__(self, other):
        return ops.gt(self, other)

    def __ge__(self, other):
        return ops.ge(self, other)

    def __invert__(self):
        return ops.logical_not(self)

    def __and__(self, other):
        return ops.logical_and(self, other)

    def __or__(self, other):
        return ops.logical_or(self, other)

    def __getitem__(self, index):
        return ops.getitem(self, index)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    # -- named ops: each is the function of the same name in minigrad.ops --------------------
    def add(self, other):
        return ops.add(self, other)

    def sub(self, other):
        return ops.sub(self, other)

    def mul(self, other):
        return ops.mul(self, other)

    def div(self, other):
        return ops.div(self, other)

    def pow(self, exponent):
        return ops.pow(self, exponent)

    def neg(self):
        return ops.neg(self)

    def exp(self):
        return ops.exp(self)

    def log(self):
        return ops.log(self)

    def log1p(self):
        return ops.log1p(self)

    def expm1(self):
        return ops.expm1(self)

    def sin(self):
        return ops.sin(self)

    def cos(self):
        return ops.cos(self)

    def sqrt(self):
        return ops.sqrt(self)

    def rsqrt(self):
        return ops.rsqrt(self)

    def tanh(self):
        return ops.tanh(self)

    def sigmoid(self):
        return ops.sigmoid(self)

    def relu(self):
        return ops.relu(self)

    def gelu(self, approximate="none"):
        return ops.gelu(self, approximate)

    def abs(self):
        return ops.abs(self)

    def sign(self):
        return ops.sign(self)

    def maximum(self, other):
        return ops.maximum(self, other)

    def minimum(self, other):
        return ops.minimum(self, other)

    def clip(self, min=None, max=None):
        return ops.clip(self, min, max)

    clamp = clip

    def masked_fill(self, mask, value):
        return ops.masked_fill(self, mask, value)

    def where(self, condition, other):
        return ops.where(condition, self, other)

    def tril(self, diagonal=0):
        return ops.tril(self, diagonal)

    def triu(self, diagonal=0):
        return ops.triu(self, diagonal)

    def eq(self, other):
        return ops.eq(self, other)

    def ne(self, other):
        return ops.ne(self, other)

    def lt(self, other):
        return ops.lt(self, other)

    def le(self, other):
        return ops.le(self, other)

    def gt(self, other):
        return ops.gt(self, other)

    def ge(self, other):
        return ops.ge(self, other)

    def isfinite(self):
        return ops.isfinite(self)

    def isnan(self):
        return ops.isnan(self)

    def isinf(self):
        return ops.isinf(self)

    def isclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False):
        return ops.isclose(self, other, rtol, atol, equal_nan)

    def allclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False):
        return ops.allclose(self, other, rtol, atol, equal_nan)

    def sum(self, dim=None, keepdim=False):
        return ops.sum(self, dim, keepdim)

    def prod(self, dim=None, keepdim=False, dtype=None):
        return ops.prod(self, dim, keepdim, dtype=dtype)

    def cumsum(self, dim, dtype=None):
        return ops.cumsum(self, dim, dtype=dtype)

    def cumprod(self, dim, dtype=None):
        return ops.cumprod(self, dim, dtype=dtype)

    def mean(self, dim=None, keepdim=False):
        return ops.mean(self, dim, keepdim)

    def var(self, dim=None, keepdim=False, correction=1, unbiased=None):
        return ops.var(self, dim, keepdim, correction, unbiased)

    def std(self, dim=None, keepdim=False, correction=1, unbiased=None):
        return ops.std(self, dim, keepdim, correction, unbiased)

    def amax(self, dim=None, keepdim=False):
        return ops.amax(self, dim, keepdim)

    def amin(self, dim=None, keepdim=False):
        return ops.amin(self, dim, keepdim)

    def max(self, dim=None, keepdim=False):
        return ops.max(self, dim, keepdim)

    def min(self, dim=None, keepdim=False):
        return ops.min(self, dim, keepdim)

    def argmax(self, dim=None, keepdim=False):
        return ops.argmax(self, dim, keepdim)

    def argmin(self, dim=None, keepdim=False):
        return ops.argmin(self, dim, keepdim)

    def logsumexp(self, dim, keepdim=False):
        return ops.logsumexp(self, dim, keepdim)

    def norm(self, p="fro", dim=None, keepdim=False, dtype=None):
        return ops.norm(self, p, dim, keepdim, dtype=dtype)

    def sort(self, dim=-1, descending=False, stable=False):
        return ops.sort(self, dim, descending, stable)

    def argsort(self, dim=-1, descending=False, stable=False):
        return ops.argsort(self, dim, descending, stable)

    def topk(self, k, dim=-1, largest=True, sorted=True):
        return ops.topk(self, k, dim, largest, sorted)

    def all(self, dim=None, keepdim=False):
        return ops.all(self, dim, keepdim)

    def any(self, dim=None, keepdim=False):
        return ops.any(self, dim, keepdim)

    def softmax(self, dim):
        return ops.softmax(self, dim)

    def log_softmax(self, dim):
        return ops.log_softmax(self, dim)

    def matmul(self, other):
        return ops.matmul(self, other)

    def mm(self, mat2):
        return ops.mm(self, mat2)

    def bmm(self, mat2):
        return ops.bmm(self, mat2)

    def dot(self, other):
        return ops.dot(self, other)

    def outer(self, vec2):
        return ops.outer(self, vec2)

    def reshape(self, *shape):
        return ops.reshape(self, *shape)

    view = reshape

    def view_as(self, other):
        return ops.reshape(self, other.shape)

    def transpose(self, dim0, dim1):
        return ops.transpose(self, dim0, dim1)

    swapaxes = transpose

    def permute(self, *dims):
        return ops.permute(self, *dims)

    def movedim(self, source, destination):
        return ops.movedim(self, source, destination)

    @property
    def T(self):
        return ops.permute(self, *reversed(range(self.ndim)))

    @property
    def mT(self):
        return ops.transpose(self, -2, -1)

    def expand(self, *sizes):
        return ops.expand(self, *sizes)

    def expand_as(self, other):
        return ops.expand(self, *other.shape)

    def broadcast_to(self, shape):
        return ops.broadcast_to(self, shape)

    def squeeze(self, dim=None):
        return ops.squeeze(self, dim)

    def unsqueeze(self, dim):
        return ops.unsqueeze(self, dim)

    def flatten(self, start_dim=0, end_dim=-1):
        return ops.flatten(self, start_dim, end_dim)

    def split(self, split_size_or_sections, dim=0):
        return ops.split(self, split_size_or_sections, dim)

    def chunk(self, chunks, dim=0):
        return ops.chunk(self, chunks, dim)

    def narrow(self, dim, start, length):
        return ops.narrow(self, dim, start, length)

    def unbind(self, dim=0):
        return ops.unbind(self, dim)

    def flip(self, *dims):
        return ops.flip(self, dims[0] if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims)

    def roll(self, shifts, dims=None):
        return ops.roll(self, shifts, dims)

    def gather(self, dim, index):
        return ops.gather(self, dim, index)

    def scatter(self, dim, index, src=None, *, value=None, reduce=None):
        return ops.scatter(self, dim, index, src, value=value, reduce=reduce)

    def scatter_add(self, dim, index, src):
        return ops.scatter_add(self, dim, index, src)

    def index_select(self, dim, index):
        return ops.index_select(self, dim, index)

    def masked_select(self, mask):
        return ops.masked_select(self, mask)

    def nonzero(self, *, as_tuple=False):
        return ops.nonzero(self, as_tuple=as_tuple)

    def repeat(self, *sizes):
        return ops.repeat(self, *sizes)

    def repeat_interleave(self, repeats, dim=None, *, output_size=None):
        return ops.repeat_interleave(self, repeats, dim, output_size=output_size)

    def multinomial(self, num_samples, replacement=False, *, generator=None):
        from .creation import multinomial

        return multinomial(self, num_samples, replacement, generator=generator)


from . import ops  # noqa: E402  (ops build on Tensor; Tensor's methods route to ops)
