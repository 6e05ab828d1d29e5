"""Running sums and products along one dim: cumsum and cumprod.

cumsum's gradient is the reversed running sum of the incoming gradient (each input
adds into every later output). cumprod's is, for each x_k, the sum over i >= k of
grad_i times the product of x_j for j <= i except j = k. Dividing y_i by x_k gives
that product only where x_k is not zero, so the backward splits each row at its
first zero z:

- k < z: the reversed running sum of grad * y, divided by x_k (nonzero there);
- k = z: the reversed running sum of grad * cumprod(x with x_z set to 1);
- k > z: zero (every product still holds x_z = 0).

That O(n) form is exact but its own derivative is not cumprod's second derivative
(the k > z terms are zero only at the point, not around it). Under create_graph the
backward therefore builds, as PyTorch does, the O(n^2) products themselves: for
each k, cumprod of x with x_k set to 1, which is exact to any order.
"""
from ..autograd import Function, is_grad_enabled
from ..tensor import Tensor
from .elementwise import where
from .reduction import accumulation_input, normalize_dim
from .reorder import flip
from .shape import cat
from .triangular import triu


class CumSum(Function):
    """Running sum along `axis`, from the start (or from the end, `reverse`)."""

    def forward(self, x, axis, reverse):
        self.axis, self.reverse = axis, reverse
        xp = self.xp
        if reverse:
            return xp.flip(xp.cumsum(xp.flip(x, axis=axis), axis=axis), axis=axis)
        return xp.cumsum(x, axis=axis)

    def backward(self, grad):
        return CumSum.apply(grad, axis=self.axis, reverse=not self.reverse)


class CumProd(Function):
    def forward(self, x, axis):
        self.axis = axis
        y = self.xp.cumprod(x, axis=axis)
        self.save_for_backward(x, y)
        return y

    def backward(self, grad):
        x, y = self.saved_tensors
        if is_grad_enabled():  # create_graph: the form whose derivatives are exact too
            return _cumprod_grad_by_products(x, grad, self.axis)
        return _cumprod_grad_by_first_zero(x, y, grad, self.axis)


def _reversed_cumsum(x, axis):
    return CumSum.apply(x, axis=axis, reverse=True)


def _running_count(mask, axis):
    """How many True values up to each position along axis (an integer tensor, no gradient)."""
    return Tensor._make(mask.xp.cumsum(mask.data, axis=axis), mask._backend)


def _cumprod_grad_by_first_zero(x, y, grad, axis):
    zeros_so_far = _running_count(x == 0, axis)
    before_first_zero = zeros_so_far == 0
    first_zero = (zeros_so_far == 1) & (x == 0)
    x_safe = where(before_first_zero, x, 1.0)
    before = where(before_first_zero, _reversed_cumsum(grad * y, axis) / x_safe, 0.0)
    without_first_zero = CumProd.apply(where(first_zero, 1.0, x), axis=axis)
    at = where(first_zero, _reversed_cumsum(grad * without_first_zero, axis), 0.0)
    return before + at


def _cumprod_grad_by_products(x, grad, axis):
    """grad_k = sum over i >= k of grad_i * prod_{j <= i, j != k} x_j, from an (..., n, n) tensor of products."""
    x_last, grad_last = x.movedim(axis, -1), grad.movedim(axis, -1)
    n = x_last.shape[-1]
    diagonal = Tensor._make(x.xp.eye(n, dtype=bool), x._backend)
    without_k = CumProd.apply(where(diagonal, 1.0, x_last.unsqueeze(-2)), axis=x_last.ndim)  # row k: x_k set to 1
    result = triu(without_k * grad_last.unsqueeze(-2)).sum(-1)  # only i >= k
    return result.movedim(-1, axis)


def _along(input, dim, dtype, op, function, **params):
    """Run a running-sum/product Function along dim."""
    input = accumulation_input(input, dtype)
    if input.ndim == 0:  # dim 0 or -1 of a 0-d tensor: the value itself
        normalize_dim(dim, 0, op)
        return function.apply(input.reshape(1), axis=0, **params).reshape(())
    return function.apply(input, axis=normalize_dim(dim, input.ndim, op), **params)


def exclusive_cumprod(x, axis, reverse=False):
    """At each k, the product of x_j for j < k (for j > k with reverse): a cumprod of x shifted by one
    place, starting from 1. Built from Tensor ops, so it is differentiable (prod's backward uses it)."""
    size = x.shape[axis]
    if size == 0:
        return x  # nothing to multiply: an empty tensor
    if reverse:
        x = flip(x, axis)
    ones = Tensor._make(x.xp.ones(x.shape[:axis] + (1,) + x.shape[axis + 1:], dtype=x.dtype), x._backend)
    result = CumProd.apply(cat([ones, x.narrow(axis, 0, size - 1)], axis), axis=axis)
    return flip(result, axis) if reverse else result


def cumsum(input, dim, dtype=None):
    """y_i = x_0 + ... + x_i along dim (torch.cumsum)."""
    return _along(input, dim, dtype, "cumsum", CumSum, reverse=False)


def cumprod(input, dim, dtype=None):
    """y_i = x_0 * ... * x_i along dim (torch.cumprod); the gradient is exact with zeros in the input."""
    return _along(input, dim, dtype, "cumprod", CumProd)


__all__ = ["cumsum", "cumprod"]
