"""Ordering: sort, argsort and topk along one dim.

The order itself (the indices) has no gradient. The values are the input read at
those indices (`gather`), so their gradient flows back to the places the values
came from, and second derivatives come with gather's.

The sort is stable: equal values keep their order, also with descending=True, and
NaN counts as larger than every number (last ascending, first descending), as in
PyTorch. `stable=False` is accepted and gives the same stable order.
"""
from ..tensor import Tensor, int64
from .indexing import Gather
from .reduction import ValuesIndices, normalize_dim


def _order(xp, a, axis, descending):
    """Indices that sort `a` along axis, stably. Descending: sort the reversed array ascending and read
    the result backwards, so that ties still come in their original order and NaN comes first."""
    if not descending:
        return xp.argsort(a, axis=axis, kind="stable")
    backwards = xp.argsort(xp.flip(a, axis=axis), axis=axis, kind="stable")
    return (a.shape[axis] - 1) - xp.flip(backwards, axis=axis)


def _indices(input, dim, descending, k, op):
    """The indices of the first k elements of input sorted along dim (all of them when k is None),
    for input seen as at least 1-D (a 0-d tensor sorts as one element, as in PyTorch), and that axis."""
    x = input.reshape(1) if input.ndim == 0 else input
    axis = normalize_dim(dim, x.ndim, op)
    size = x.shape[axis]
    if k is not None and not 0 <= k <= size:
        raise ValueError(f"{op}: k = {k} is out of range for dimension {dim} of size {size} (shape {input.shape})")
    order = _order(x.xp, x.data, axis, descending)
    if k is not None and k < size:
        order = order[(slice(None),) * axis + (slice(0, k),)]
    return x, axis, Tensor._make(order if order.dtype == int64 else order.astype(int64), x._backend)


def _values_and_indices(input, dim, descending, k, op):
    x, axis, indices = _indices(input, dim, descending, k, op)
    values = Gather.apply(x, indices, axis=axis)
    if input.ndim == 0:
        values, indices = values.reshape(()), indices.reshape(())
    return ValuesIndices(values, indices)


def sort(input, dim=-1, descending=False, stable=False):
    """(values, indices) of input sorted along dim (torch.sort); values carry the gradient."""
    return _values_and_indices(input, dim, descending, None, "sort")


def argsort(input, dim=-1, descending=False, stable=False):
    """The indices that sort input along dim (torch.argsort); no gradient."""
    _, _, indices = _indices(input, dim, descending, None, "argsort")
    return indices.reshape(input.shape)


def topk(input, k, dim=-1, largest=True, sorted=True):
    """(values, indices) of the k largest (or smallest) elements along dim, in order (torch.topk)."""
    return _values_and_indices(input, dim, largest, int(k), "topk")


__all__ = ["sort", "argsort", "topk"]
