"""Vector norms: torch.norm and Tensor.norm over one or more dims (or all elements).

p = inf, -inf, 1 and 0 are built from abs, amax/amin and sum (their gradients follow:
max-abs ties share the gradient, |x| passes sign(x), and the count of nonzeros has
none). Other p, 2 among them, is one op, (sum |x|^p)^(1/p), whose gradient is
sign(x) |x|^(p-1) / norm^(p-1): where the norm is 0 the gradient is 0, as in PyTorch,
not the 0/0 that sqrt's chain rule would give (and at x = 0 it is 0 also for p < 1).
"""
import math

from ..autograd import Function
from .elementwise import abs, sign, where
from .reduction import amax, amin, normalize_dims, sum


class PNorm(Function):
    def forward(self, x, axes, keepdim, p):
        self.p = p
        xp = self.xp
        if p == 2:
            norm = xp.sqrt((x * x).sum(axis=axes, keepdims=True))
        else:
            norm = (xp.abs(x) ** p).sum(axis=axes, keepdims=True) ** (1 / p)
        self.kept_shape = norm.shape
        result = norm if keepdim else norm.reshape(tuple(s for i, s in enumerate(x.shape) if i not in axes))
        self.save_for_backward(x, result)
        return result

    def backward(self, grad):
        x, norm = self.saved_tensors
        norm, grad = norm.reshape(self.kept_shape), grad.reshape(self.kept_shape)
        nonzero = norm != 0
        p = self.p
        scale = grad / where(nonzero, norm, 1.0) ** (p - 1) * nonzero
        if p == 2:
            return x * scale
        return sign(x) * where(x != 0, abs(x), 1.0) ** (p - 1) * scale  # 0 at x = 0, not 0 * inf for p < 1


def norm(input, p="fro", dim=None, keepdim=False, dtype=None):
    """The vector p-norm of input over dim: an int, a tuple of ints, or None for all elements.

    p is a number (1, 2, inf, -inf, 0 or any other; None means 2) or "fro", the 2-norm over at most
    two dims (a matrix's Frobenius norm). Matrix norms such as "nuc" are not supported.
    """
    if dtype is not None:
        input = input.to(dtype)
    if input.dtype.kind != "f":
        raise TypeError(f"norm: expected a floating-point tensor, got {input.dtype}")
    if isinstance(p, str):
        if p != "fro":
            raise NotImplementedError(f"norm: p={p!r} is a matrix norm, which is not supported (only 'fro' and "
                                      "numbers)")
        if dim is not None and not isinstance(dim, int) and len(dim) > 2:
            raise ValueError(f"norm: 'fro' takes at most two dims, got dim={dim}")
        p = 2
    elif p is None:
        p = 2
    axes = normalize_dims(dim, input.ndim, "norm")
    if p == math.inf:
        return amax(abs(input), axes, keepdim)
    if p == -math.inf:
        return amin(abs(input), axes, keepdim)
    if p == 0:
        return sum((input != 0).to(input.dtype), axes, keepdim)
    if p == 1:
        return sum(abs(input), axes, keepdim)
    return PNorm.apply(input, axes=axes, keepdim=keepdim, p=float(p))


__all__ = ["norm"]
