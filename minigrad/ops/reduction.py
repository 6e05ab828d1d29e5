"""Reductions over dimensions: sum, prod, mean, amax/amin, max/min, var/std, logsumexp, argmax.

`dim` is an int, a tuple of ints (negative counts from the end) or None (all);
`keepdim` keeps reduced dimensions with size 1, as in PyTorch. The gradient of a
reduction broadcasts the output's gradient back over the reduced dimensions.
"""
import builtins
from collections import namedtuple

from ..autograd import Function
from ..tensor import int64
from .broadcast import broadcast_to
from .elementwise import _no_grad, exp, log, sqrt


def normalize_dims(dim, ndim, op="reduction"):
    """dim (None, int or tuple, negatives allowed) -> sorted tuple of non-negative axes."""
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    result = []
    for d in dims:
        low, high = -builtins.max(ndim, 1), builtins.max(ndim, 1) - 1
        if not low <= d <= high:
            raise IndexError(f"{op}: dimension {d} out of range (expected in [{low}, {high}])")
        result.append(d % ndim if ndim else None)
    if len(set(result)) != len(result):
        raise ValueError(f"{op}: dimension repeated in {dim}")
    if ndim == 0:
        return ()  # a 0-d tensor accepts dim 0 or -1, as in PyTorch: there is nothing to reduce
    return tuple(sorted(result))


def normalize_dim(dim, ndim, op="reduction"):
    """One dim -> a non-negative axis; None for a 0-d tensor (where dim 0 or -1 means the whole value)."""
    if not isinstance(dim, int):
        raise TypeError(f"{op}: dim must be an int, got {dim!r}")
    axes = normalize_dims(dim, ndim, op)
    return axes[0] if axes else None


def _kept_shape(shape, axes):
    return tuple(1 if i in axes else size for i, size in enumerate(shape))


class Sum(Function):
    def forward(self, x, axes, keepdim):
        self.input_shape = x.shape
        self.kept_shape = _kept_shape(x.shape, axes)
        return x.sum(axis=axes, keepdims=keepdim)

    def backward(self, grad):
        return broadcast_to(grad.reshape(self.kept_shape), self.input_shape)


class Amax(Function):
    """Max (or min) over dims; the gradient is shared equally among tied maxima."""

    def forward(self, x, axes, keepdim, largest):
        result = x.max(axis=axes, keepdims=True) if largest else x.min(axis=axes, keepdims=True)
        winners = (x == result).astype(x.dtype)
        winners /= winners.sum(axis=axes, keepdims=True)
        self.save_for_backward(winners)
        self.kept_shape = result.shape
        return result if keepdim else result.reshape(tuple(s for i, s in enumerate(x.shape) if i not in axes))

    def backward(self, grad):
        (winners,) = self.saved_tensors
        return grad.reshape(self.kept_shape) * winners


class Prod(Function):
    """Product along one axis. The gradient of x_k is the product of all the other elements: the
    product of those before k times the product of those after k (no division, so exact with zeros)."""

    def forward(self, x, axis, keepdim):
        self.axis, self.keepdim = axis, keepdim
        self.save_for_backward(x)
        return x.prod(axis=axis, keepdims=keepdim)

    def backward(self, grad):
        from .cumulative import exclusive_cumprod

        (x,) = self.saved_tensors
        if not self.keepdim:
            grad = grad.unsqueeze(self.axis)
        return grad * exclusive_cumprod(x, self.axis) * exclusive_cumprod(x, self.axis, reverse=True)


def sum(x, dim=None, keepdim=False):
    return Sum.apply(x, axes=normalize_dims(dim, x.ndim, "sum"), keepdim=keepdim)


def accumulation_input(x, dtype):
    """x cast to `dtype` when one is given; integers and bools otherwise accumulate in int64, as in PyTorch."""
    if dtype is not None:
        return x.to(dtype)
    if x.dtype.kind in "biu" and x.dtype != int64:
        return x.to(int64)
    return x


def prod(x, dim=None, keepdim=False, dtype=None):
    """Product of all elements, or along one dim (torch.prod); the gradient is exact with zeros."""
    x = accumulation_input(x, dtype)
    if dim is None:
        result = Prod.apply(x.reshape(-1), axis=0, keepdim=False)
        return result.reshape((1,) * x.ndim) if keepdim else result
    axis = normalize_dim(dim, x.ndim, "prod")
    if axis is None:  # dim 0 or -1 of a 0-d tensor: the value itself
        return Prod.apply(x.reshape(1), axis=0, keepdim=False)
    return Prod.apply(x, axis=axis, keepdim=keepdim)


def _count(x, axes):
    count = 1
    for axis in axes:
        count *= x.shape[axis]
    return count


def mean(x, dim=None, keepdim=False):
    if x.dtype.kind != "f":  # PyTorch refuses too, rather than guess a float dtype
        raise RuntimeError(f"mean() needs a floating-point tensor, got {x.dtype}: cast it first, e.g. x.float().mean()")
    axes = normalize_dims(dim, x.ndim, "mean")
    return sum(x, axes, keepdim) * (1.0 / _count(x, axes))


def var(x, dim=None, keepdim=False, correction=1, unbiased=None):
    """Variance; `correction=1` (the default, as in PyTorch) divides by N - 1."""
    if unbiased is not None:
        correction = 1 if unbiased else 0
    axes = normalize_dims(dim, x.ndim, "var")
    centered = x - mean(x, axes, keepdim=True)
    degrees_of_freedom = _count(x, axes) - correction
    scale = 1.0 / degrees_of_freedom if degrees_of_freedom > 0 else float("nan")  # NaN, as PyTorch, not a crash
    return sum(centered * centered, axes, keepdim) * scale


def std(x, dim=None, keepdim=False, correction=1, unbiased=None):
    return sqrt(var(x, dim, keepdim, correction, unbiased))


def amax(x, dim=None, keepdim=False):
    return Amax.apply(x, axes=normalize_dims(dim, x.ndim, "amax"), keepdim=keepdim, largest=True)


def amin(x, dim=None, keepdim=False):
    return Amax.apply(x, axes=normalize_dims(dim, x.ndim, "amin"), keepdim=keepdim, largest=False)


ValuesIndices = namedtuple("ValuesIndices", ["values", "indices"])


def _max_or_min(x, dim, keepdim, largest):
    if dim is None:
        return amax(x) if largest else amin(x)
    indices = (argmax if largest else argmin)(x, dim, keepdim=True)
    from .indexing import gather

    values = gather(x, dim, indices)
    if not keepdim:
        values, indices = values.squeeze(dim), indices.squeeze(dim)
    return ValuesIndices(values, indices)


def max(x, dim=None, keepdim=False):
    """max(x) -> the largest value; max(x, dim) -> (values, indices), as in PyTorch."""
    return _max_or_min(x, dim, keepdim, True)


def min(x, dim=None, keepdim=False):
    return _max_or_min(x, dim, keepdim, False)


def _arg_reduce(x, dim, keepdim, largest):
    def reduce(a):
        method = a.argmax if largest else a.argmin
        if dim is None:
            result = method()
            return result.reshape((1,) * a.ndim) if keepdim else result
        axis = normalize_dim(dim, a.ndim, "argmax")
        return method(axis=axis, keepdims=keepdim)

    result = _no_grad(reduce, x)
    return result if result.dtype == "int64" else result.long()


def argmax(x, dim=None, keepdim=False):
    return _arg_reduce(x, dim, keepdim, True)


def argmin(x, dim=None, keepdim=False):
    return _arg_reduce(x, dim, keepdim, False)


def logsumexp(x, dim, keepdim=False):
    """log(sum(exp(x))) without overflow: the max is taken out first (and -inf rows stay -inf)."""
    axes = normalize_dims(dim, x.ndim, "logsumexp")
    shift = amax(x.detach(), axes, keepdim=True)
    shift = shift.masked_fill(~shift.isfinite(), 0.0)
    result = log(sum(exp(x - shift), axes, keepdim=True)) + shift
    return result if keepdim else result.squeeze(axes)


def all(x, dim=None, keepdim=False):
    axes = normalize_dims(dim, x.ndim, "all")
    return _no_grad(lambda a: a.all(axis=axes, keepdims=keepdim), x)


def any(x, dim=None, keepdim=False):
    axes = normalize_dims(dim, x.ndim, "any")
    return _no_grad(lambda a: a.any(axis=axes, keepdims=keepdim), x)


__all__ = ["sum", "prod", "mean", "var", "std", "amax", "amin", "max", "min", "argmax", "argmin", "logsumexp",
           "all", "any", "normalize_dims", "normalize_dim"]
