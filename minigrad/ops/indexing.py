"""Indexing: x[index] (basic and advanced), gather, and the scatter-adds that are their gradients.

Reading x[idx] copies values out; its gradient writes the incoming gradient back
into a zero tensor shaped like x. With integer-array indices the same element can
be read several times, so the write must *add* (scatter-add), never overwrite.
"""
from ..autograd import Function
from ..backend import host_numpy
from ..tensor import Tensor


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
    for a, (index_size, size) in enumerate(zip(index.shape, x.shape)):
        if a != axis and index_size > size:
            raise ValueError(f"gather: index of shape {index.shape} is larger than the input {x.shape} in dimension "
                             f"{a}; it may only be larger along dim {axis}")
    check_ids_in_range(index, x.shape[axis], "gather", "index")
    return Gather.apply(x, index, axis=axis)


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

