"""Indexing: x[index] (basic and advanced), index_select, masked_select, nonzero, gather and
scatter, and the scatter-adds that are their gradients.

Reading x[idx] copies values out; its gradient writes the incoming gradient back
into a zero tensor shaped like x. With integer-array indices the same element can
be read several times, so the write must *add* (scatter-add), never overwrite.
"""
from ..autograd import Function
from ..backend import host_numpy
from ..tensor import Tensor, int64
from .broadcast import broadcast_shapes, broadcast_to


def array_index(index, backend):
    """Turn an index that may hold tensors and lists into one the array module understands."""
    if not isinstance(index, tuple):
        index = (index,)
    parts = []
    for part in index:
        if isinstance(part, Tensor):
            if part._backend is not backend:
                raise RuntimeError(f"indexing a {backend.device} tensor with a {part.device} tensor")
            if part.dtype.kind not in "iub":
                raise IndexError(f"tensors used as indices must be integer or bool, got {part.dtype}")
            part = part.data
        elif isinstance(part, (list, tuple)):
            part = backend.asarray(part)
        parts.append(part)
    return tuple(parts)


def _is_basic(index):
    return all(part is None or part is Ellipsis or isinstance(part, (int, slice)) for part in index)


class GetItem(Function):
    def forward(self, x, index):
        self.input_shape = x.shape
        if _is_basic(index):
            # Ints, slices, None and ... give a view of x, as in PyTorch: a trailing ... keeps NumPy from
            # turning a single element into a detached scalar. Integer-array or mask indices copy.
            self.aliases_input = True
            if Ellipsis not in index:
                index = index + (Ellipsis,)
        self.index = index
        return x[index]

    def backward(self, grad):
        return ScatterIndex.apply(grad, index=self.index, shape=self.input_shape)


class ScatterIndex(Function):
    """zeros(shape) with grad added at `index` (the gradient of GetItem)."""

    def forward(self, grad, index, shape):
        self.index = index
        result = self.xp.zeros(shape, dtype=grad.dtype)
        if _is_basic(index) or all(getattr(p, "dtype", bool) == bool for p in index if hasattr(p, "shape")):
            result[index] = grad  # slices and boolean masks hit each element at most once
        else:
            self.backend.scatter_add(result, index, grad)
        return result

    def backward(self, grad):
        return GetItem.apply(grad, index=self.index)


def getitem(x, index):
    return GetItem.apply(x, index=array_index(index, x._backend))


def _open_grid(index_array, axis, xp):
    """Index tuple that addresses, for every position of index_array, that position with `axis` replaced."""
    grid = []
    for a, size in enumerate(index_array.shape):
        if a == axis:
            grid.append(index_array)
        else:
            shape = [1] * index_array.ndim
            shape[a] = size
            grid.append(xp.arange(size).reshape(shape))
    return tuple(grid)


class Gather(Function):
    def forward(self, x, index, axis):
        self.axis = axis
        self.input_shape = x.shape
        self.save_for_backward(index)
        # PyTorch's rule: on the other dims, index may be smaller than x and reads x's first rows;
        # NumPy would broadcast instead, so cut x down to the index's extent first.
        extent = tuple(slice(None) if a == axis else slice(0, size) for a, size in enumerate(index.shape))
        return self.xp.take_along_axis(x[extent], index, axis=axis)

    def backward(self, grad):
        (index,) = self.saved_tensors
        return ScatterAlongAxis.apply(grad, index, axis=self.axis, shape=self.input_shape), None


class ScatterAlongAxis(Function):
    """zeros(shape) with grad added along `axis` at `index` (the gradient of Gather)."""

    def forward(self, grad, index, axis, shape):
        self.axis = axis
        self.save_for_backward(index)
        result = self.xp.zeros(shape, dtype=grad.dtype)
        self.backend.scatter_add(result, _open_grid(index, axis, self.xp), grad)
        return result

    def backward(self, grad):
        (index,) = self.saved_tensors
        return Gather.apply(grad, index, axis=self.axis), None


def gather(x, dim, index):
    """out[i][j] = x[i][index[i][j]] along `dim` (torch.gather); out has the index's shape."""
    if index.dtype.kind not in "iu":
        raise TypeError(f"gather: index must be an integer tensor, got {index.dtype}")
    if index.ndim != x.ndim:
        raise ValueError(f"gather: index of shape {index.shape} must have as many dims as input {x.shape}")
    from .reduction import normalize_dim

    if x.ndim == 0:
        raise IndexError("gather: the input must have at least one dimension")
    axis = normalize_dim(dim, x.ndim, "gather")
    _check_index_fits(index, x, axis, "gather")
    return Gather.apply(x, index, axis=axis)


def _check_index_fits(index, x, axis, op):
    """torch's rule for gather and scatter: index may be larger than x only along `axis`, and its ids
    along `axis` must be in range."""
    for a, (index_size, size) in enumerate(zip(index.shape, x.shape)):
        if a != axis and index_size > size:
            raise ValueError(f"{op}: index of shape {index.shape} is larger than the input {x.shape} in dimension "
                             f"{a}; it may only be larger along dim {axis}")
    check_ids_in_range(index, x.shape[axis], op, "index")


class Scatter(Function):
    """x with src written (or, with `add`, added) along `axis` at index: torch.scatter and scatter_add.

    src has the index's shape (or is one number). The places that scatter overwrites pass no gradient
    back to x; src's gradient is the output's gradient read at index (gather). With an index repeated
    along `axis`, scatter keeps one of the writes, and each src element still gets the gradient of the
    place it was written to, as in PyTorch.
    """

    def forward(self, x, index, src, axis, add):
        self.axis, self.add = axis, add
        self.save_for_backward(index)
        result = x.copy()
        grid = _open_grid(index, axis, self.xp)
        if add:
            self.backend.scatter_add(result, grid, src)
        else:
            result[grid] = src
        return result

    def backward(self, grad):
        (index,) = self.saved_tensors
        need_x, _, need_src = self.needs_input_grad
        grad_x = grad_src = None
        if need_x:
            grad_x = grad if self.add else Scatter.apply(grad, index, 0.0, axis=self.axis, add=False)
        if need_src:
            grad_src = Gather.apply(grad, index, axis=self.axis)
        return grad_x, None, grad_src


def _scatter(input, dim, index, src, add, op):
    if not isinstance(index, Tensor) or index.dtype.kind not in "iu":
        raise TypeError(f"{op}: index must be an integer tensor, got {getattr(index, 'dtype', type(index))}")
    if input.ndim == 0 or index.ndim != input.ndim:
        raise ValueError(f"{op}: index of shape {index.shape} must have as many dims as the input {input.shape} "
                         "(at least one)")
    from .reduction import normalize_dim

    axis = normalize_dim(dim, input.ndim, op)
    _check_index_fits(index, input, axis, op)
    if isinstance(src, Tensor):
        if src.ndim != index.ndim or any(i > s for i, s in zip(index.shape, src.shape)):
            raise ValueError(f"{op}: index of shape {index.shape} must not be larger than src {src.shape} in any "
                             "dimension")
        if src.dtype != input.dtype:
            raise TypeError(f"{op}: src has dtype {src.dtype} but the input has {input.dtype}")
        if src.shape != index.shape:  # as in PyTorch, only src's first elements along each dim are used
            src = src[tuple(slice(0, size) for size in index.shape)]
    return Scatter.apply(input, index, src, axis=axis, add=add)


def scatter(input, dim, index, src=None, *, value=None, reduce=None):
    """A copy of input with out[..., index[i][j], ...] = src[i][j] along dim (torch.scatter, out of place).

    src is a tensor (only the part of it that index covers is used) or one number, given as src or value.
    """
    if reduce is not None:
        raise NotImplementedError(f"scatter: reduce={reduce!r} is not supported; use scatter_add for sums")
    if src is None or not isinstance(src, Tensor):
        src = value if src is None else src
        if src is None:
            raise TypeError("scatter: give src (a tensor) or value (a number)")
    return _scatter(input, dim, index, src, add=False, op="scatter")


def scatter_add(input, dim, index, src):
    """A copy of input with src[i][j] added at out[..., index[i][j], ...] along dim, repeats adding up
    (torch.scatter_add, out of place). On a GPU the sums use atomic adds, which CUDA has for floats,
    int32 and uint32/uint64 but not for int64."""
    if not isinstance(src, Tensor):
        raise TypeError(f"scatter_add: src must be a tensor, got {type(src).__name__}")
    return _scatter(input, dim, index, src, add=True, op="scatter_add")


def index_select(input, dim, index):
    """The slices of input at `index` (a 1-D integer tensor) along dim, in that order, repeats allowed
    (torch.index_select). The gradient adds back into each slice as often as it was picked."""
    if not isinstance(index, Tensor) or index.dtype.kind not in "iu" or index.ndim > 1:
        raise TypeError(f"index_select: index must be a 0-d or 1-D integer tensor, got "
                        f"{getattr(index, 'shape', type(index))} of {getattr(index, 'dtype', '')}")
    from .reduction import normalize_dim

    if input.ndim == 0:
        raise IndexError("index_select: the input must have at least one dimension")
    axis = normalize_dim(dim, input.ndim, "index_select")
    check_ids_in_range(index, input.shape[axis], "index_select", "index")
    return input[(slice(None),) * axis + (index.reshape(-1),)]


def masked_select(input, mask):
    """The elements of input where mask is True, as a 1-D tensor (input and mask broadcast together).

    How many there are is only known once they are counted: on a GPU this waits for the device
    (as it does in PyTorch).
    """
    if not isinstance(mask, Tensor) or mask.dtype.kind != "b":
        raise TypeError(f"masked_select: the mask must be a bool tensor, got {getattr(mask, 'dtype', type(mask))}")
    try:
        shape = broadcast_shapes(input.shape, mask.shape)
    except ValueError as error:
        raise ValueError(f"masked_select: {error}") from None
    return broadcast_to(input, shape)[broadcast_to(mask, shape)]


def nonzero(input, *, as_tuple=False):
    """Indices of the nonzero (True) elements in row-major order: an (n, ndim) int64 tensor, or with
    as_tuple one 1-D tensor per dim (what x[...] takes). No gradient.

    n is only known once the device has counted them: on a GPU this waits for it, as in PyTorch.
    """
    xp = input.xp
    data = input.data.reshape(1) if input.ndim == 0 else input.data  # NumPy refuses nonzero of a 0-d array
    positions = [p if p.dtype == int64 else p.astype(int64) for p in xp.nonzero(data)]
    if as_tuple:
        return tuple(Tensor._make(p, input._backend) for p in positions)
    if input.ndim == 0:
        return Tensor._make(xp.zeros((positions[0].shape[0], 0), dtype=int64), input._backend)
    return Tensor._make(xp.stack(positions, axis=1), input._backend)


def check_ids_in_range(ids, size, op, what, ignore_index=None):
    """Refuse ids outside [0, size): NumPy would silently read -1 as the last row.

    Checked on the CPU only, where it is one cheap pass over the ids. On a GPU the check
    would make the host wait for the device at every step, so there out-of-range ids are
    NOT caught (negative ones wrap around, as on any NumPy-like array).
    """
    if ids._backend.xp is not host_numpy or ids.data.size == 0:
        return
    values = ids.data
    if values.min() >= 0 and values.max() < size:
        return  # the usual case: two cheap reductions
    bad = (values < 0) | (values >= size)
    if ignore_index is not None:
        bad &= values != ignore_index
    if bad.any():
        raise IndexError(f"{op}: {what} {int(values[bad][0])} is out of bounds (expected 0 <= {what} < {size})")

