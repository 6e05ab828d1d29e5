"""Shape ops: reshape (and squeeze/unsqueeze/flatten), transpose, permute, cat, stack, split,
narrow, unbind, repeat and repeat_interleave.

None of them changes a value, so each backward only moves the gradient back
into the input's layout.
"""
from ..autograd import Function
from ..backend import host_numpy
from ..tensor import Tensor
from .promotion import promote
from .reduction import normalize_dim, normalize_dims


def _axis(dim, ndim, op):
    axis = normalize_dim(dim, ndim, op)
    if axis is None:
        raise IndexError(f"{op}: a 0-d tensor has no dimension {dim}")
    return axis


def _is_view_of(result, x):
    """True when `result` shares x's memory (NumPy and CuPy both point a view's `.base` at the owner).

    An array type without `.base` (the test suite's simulated GPU) counts as not a view.
    """
    base = getattr(result, "base", None)
    return base is not None and (base is x or base is x.base)


class Reshape(Function):
    def forward(self, x, shape):
        self.input_shape = x.shape
        result = x.reshape(shape)
        self.aliases_input = _is_view_of(result, x)  # a view, unless the layout forced a copy
        return result

    def backward(self, grad):
        return grad.reshape(self.input_shape)


class Permute(Function):
    aliases_input = True  # always a view with the strides reordered

    def forward(self, x, dims):
        self.inverse = tuple(sorted(range(len(dims)), key=dims.__getitem__))
        return self.xp.transpose(x, dims)

    def backward(self, grad):
        return Permute.apply(grad, dims=self.inverse)


class Cat(Function):
    def forward(self, *arrays, axis):
        self.axis = axis
        self.sizes = [a.shape[axis] for a in arrays]
        return self.xp.concatenate(arrays, axis=axis)

    def backward(self, grad):
        return tuple(split(grad, self.sizes, self.axis))


class Stack(Function):
    def forward(self, *arrays, axis):
        self.axis = axis
        return self.xp.stack(arrays, axis=axis)

    def backward(self, grad):
        prefix = (slice(None),) * self.axis
        return tuple(grad[prefix + (i,)] for i in range(grad.shape[self.axis]))


class Repeat(Function):
    def forward(self, x, sizes):
        self.input_shape = x.shape
        self.sizes = sizes
        return self.xp.tile(x, sizes)

    def backward(self, grad):
        lead = len(self.sizes) - len(self.input_shape)
        shape = (1,) * lead + tuple(self.input_shape)
        interleaved = []
        for repeats, size in zip(self.sizes, shape):
            interleaved += [repeats, size]
        summed = grad.reshape(interleaved).sum(tuple(range(0, len(interleaved), 2)))
        return summed.reshape(self.input_shape)


def _sizes(args):
    return tuple(args[0]) if len(args) == 1 and isinstance(args[0], (tuple, list)) else tuple(args)


def reshape(x, *shape):
    shape = _sizes(shape)
    if shape == x.shape:
        return x
    return Reshape.apply(x, shape=shape)


view = reshape


def permute(x, *dims):
    dims = _sizes(dims)
    if len(dims) != x.ndim:
        raise ValueError(f"permute: {len(dims)} dims {dims} given for a tensor of shape {x.shape}")
    dims = tuple(d % x.ndim for d in dims)
    if sorted(dims) != list(range(x.ndim)):
        raise ValueError(f"permute: {dims} is not a permutation of the dims of shape {x.shape}")
    if dims == tuple(range(x.ndim)):
        return x
    return Permute.apply(x, dims=dims)


def transpose(x, dim0, dim1):
    dims = list(range(x.ndim))
    a, b = _axis(dim0, x.ndim, "transpose"), _axis(dim1, x.ndim, "transpose")
    dims[a], dims[b] = dims[b], dims[a]
    return permute(x, *dims)


swapaxes = transpose


def movedim(x, source, destination):
    source, destination = _axis(source, x.ndim, "movedim"), _axis(destination, x.ndim, "movedim")
    dims = [d for d in range(x.ndim) if d != source]
    dims.insert(destination, source)
    return permute(x, *dims)


def squeeze(x, dim=None):
    """Drop size-1 dims (all of them, or those among `dim` that have size 1)."""
    axes = normalize_dims(dim, x.ndim, "squeeze") if x.ndim else ()
    return reshape(x, tuple(s for i, s in enumerate(x.shape) if not (i in axes and s == 1)))


def unsqueeze(x, dim):
    if not -x.ndim - 1 <= dim <= x.ndim:
        raise IndexError(f"unsqueeze: dimension {dim} out of range for a tensor of {x.ndim} dims")
    dim = dim % (x.ndim + 1)
    return reshape(x, x.shape[:dim] + (1,) + x.shape[dim:])


def flatten(x, start_dim=0, end_dim=-1):
    if x.ndim == 0:
        return reshape(x, (1,))
    start, end = _axis(start_dim, x.ndim, "flatten"), _axis(end_dim, x.ndim, "flatten")
    size = 1
    for s in x.shape[start:end + 1]:
        size *= s
    return reshape(x, x.shape[:start] + (size,) + x.shape[end + 1:])


def _check_same_shape_but(tensors, axis, op):
    first = tensors[0]
    for t in tensors[1:]:
        if t.ndim != first.ndim or any(a != b for i, (a, b) in enumerate(zip(t.shape, first.shape)) if i != axis):
            raise ValueError(f"{op}: shapes {first.shape} and {t.shape} differ outside dimension {axis}")


def _same_dtype(tensors):
    """Mixed dtypes are cast to PyTorch's result dtype (int with float32 gives float32, not float64)."""
    dtype = tensors[0].dtype
    if all(t.dtype == dtype for t in tensors):
        return tensors
    return promote(*tensors)


def cat(tensors, dim=0):
    """Join tensors along an existing dimension."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: expected a non-empty list of tensors")
    axis = _axis(dim, tensors[0].ndim, "cat")
    _check_same_shape_but(tensors, axis, "cat")
    return Cat.apply(*_same_dtype(tensors), axis=axis)


concatenate = cat


def stack(tensors, dim=0):
    """Join tensors along a new dimension."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: expected a non-empty list of tensors")
    for t in tensors[1:]:
        if t.shape != tensors[0].shape:
            raise ValueError(f"stack: all tensors must have one shape, got {tensors[0].shape} and {t.shape}")
    if not -tensors[0].ndim - 1 <= dim <= tensors[0].ndim:
        raise IndexError(f"stack: dimension {dim} out of range")
    return Stack.apply(*_same_dtype(tensors), axis=dim % (tensors[0].ndim + 1))


def split(x, split_size_or_sections, dim=0):
    """Pieces of `split_size` (the last may be smaller), or of the listed sizes, along dim."""
    axis = _axis(dim, x.ndim, "split")
    total = x.shape[axis]
    if isinstance(split_size_or_sections, int):
        step = split_size_or_sections
        if step <= 0:
            raise ValueError(f"split: split_size must be positive, got {step}")
        sizes = [min(step, total - start) for start in range(0, total, step)]
    else:
        sizes = list(split_size_or_sections)
        if sum(sizes) != total:
            raise ValueError(f"split: sections {sizes} do not add up to the size {total} of dim {dim}")
    pieces, start = [], 0
    prefix = (slice(None),) * axis
    for size in sizes:
        pieces.append(x[prefix + (slice(start, start + size),)])
        start += size
    return tuple(pieces)


def chunk(x, chunks, dim=0):
    """At most `chunks` pieces of equal size (the last may be smaller), as torch.chunk."""
    total = x.shape[_axis(dim, x.ndim, "chunk")]
    return split(x, max(-(-total // chunks), 1), dim)


def narrow(input, dim, start, length):
    """The `length` elements from `start` on along dim (start may count from the end): a view, as
    torch.narrow, so the gradient goes back to those elements only."""
    axis = _axis(dim, input.ndim, "narrow")
    size = input.shape[axis]
    start, length = int(start), int(length)
    if not -size <= start <= size:
        raise IndexError(f"narrow: start {start} is out of range for dimension {dim} of size {size} "
                         f"(shape {input.shape})")
    if start < 0:
        start += size
    if length < 0 or start + length > size:
        raise IndexError(f"narrow: start {start} + length {length} exceeds dimension {dim} of size {size} "
                         f"(shape {input.shape})")
    return input[(slice(None),) * axis + (slice(start, start + length),)]


def unbind(input, dim=0):
    """The slices of input along dim, that dim removed, as a tuple of views (torch.unbind)."""
    axis = _axis(dim, input.ndim, "unbind")
    prefix = (slice(None),) * axis
    return tuple(input[prefix + (i,)] for i in range(input.shape[axis]))


def repeat(x, *sizes):
    sizes = _sizes(sizes)
    if len(sizes) < x.ndim:
        raise ValueError(f"repeat: {len(sizes)} repeat counts for a tensor of {x.ndim} dims")
    return Repeat.apply(x, sizes=sizes)


def repeat_interleave(input, repeats=None, dim=None, *, output_size=None):
    """Each element (each slice along dim) repeated in place: [a, b] -> [a, a, b, b] (torch.repeat_interleave).

    `repeats` is a number, or an integer tensor with one count per slice along dim (or one count for
    all). Without dim the input is flattened first. `repeat_interleave(counts)` alone gives each index
    i counts[i] times. With a tensor of counts the size of the output is their sum: unless it is given
    as `output_size`, finding it waits for the device on a GPU (one number comes back), as in PyTorch.
    """
    if repeats is None:  # repeat_interleave(counts)
        if input.ndim != 1 or input.dtype.kind not in "iu":
            raise ValueError(f"repeat_interleave: the counts alone must be a 1-D integer tensor, got shape "
                             f"{input.shape} and dtype {input.dtype}")
        input, repeats = Tensor._make(input.xp.arange(input.shape[0]), input._backend), input
    if dim is None:
        input, dim = input.reshape(-1), 0
    axis = _axis(dim, input.ndim, "repeat_interleave")
    size = input.shape[axis]
    if not isinstance(repeats, Tensor):
        repeats = int(repeats)
        if repeats < 0:
            raise ValueError(f"repeat_interleave: repeats must be non-negative, got {repeats}")
        copies = input.unsqueeze(axis + 1)
        copies = copies.expand(copies.shape[:axis + 1] + (repeats,) + copies.shape[axis + 2:])
        return copies.reshape(input.shape[:axis] + (size * repeats,) + input.shape[axis + 1:])
    return _repeat_by_counts(input, axis, repeats, output_size)


def _repeat_by_counts(input, axis, counts, output_size):
    from .indexing import index_select

    if counts.dtype.kind not in "iu" or counts.ndim > 1 or counts.numel() not in (1, input.shape[axis]):
        raise ValueError(f"repeat_interleave: repeats must be an integer tensor of one count or of one count per "
                         f"element of dimension {axis} (size {input.shape[axis]}), got shape {counts.shape} and "
                         f"dtype {counts.dtype}")
    xp = counts.xp
    counts = xp.broadcast_to(counts.data.reshape(-1), (input.shape[axis],))
    if xp is host_numpy and counts.size and counts.min() < 0:
        raise ValueError("repeat_interleave: repeats must be non-negative")
    ends = xp.cumsum(counts)
    if output_size is None:
        output_size = int(Tensor._make(ends[-1:], input._backend).item()) if ends.size else 0
    # output i comes from the first slice whose running end passes i
    index = xp.searchsorted(ends, xp.arange(output_size), side="right")
    return index_select(input, axis, Tensor._make(index, input._backend))


__all__ = ["reshape", "view", "permute", "transpose", "swapaxes", "movedim", "squeeze", "unsqueeze", "flatten",
           "cat", "concatenate", "stack", "split", "chunk", "narrow", "unbind", "repeat", "repeat_interleave"]
