"""Kernels for F.dropout and F.relu_dropout: the masking as one pass per block, on every core.

Replaces: the reference's x * keep * scale (two multiplies, two nodes, each a pass, and the
full-size product x * keep kept for the second one's backward) and, for relu_dropout, the
relu before it. Saves: one fused pass per row block forward
and backward; the bool mask is the only thing kept; relu_dropout narrows the same mask to
the positive values (keep &= x > 0) inside those blocks, so relu costs no pass of its own.
The mask is the one the reference draws (the backend's keep_mask), so both paths agree.
"""
from .. import functional as F
from ..autograd import Function


def masked_scaled(backend, values, keep, scale, narrow_to_positive=False):
    """values * keep * scale in one pass per block. With `narrow_to_positive`, each block of the
    mask first drops the values <= 0 (keep &= values > 0, in place)."""
    xp = backend.xp
    result = xp.empty(values.shape, dtype=values.dtype)
    flat_values, flat_keep, flat_result = values.reshape(-1), keep.reshape(-1), result.reshape(-1)

    def block(start, stop):
        out, kept, block_values = flat_result[start:stop], flat_keep[start:stop], flat_values[start:stop]
        if narrow_to_positive:
            kept &= block_values > 0
        xp.multiply(block_values, kept, out=out)
        out *= scale

    backend.parallel_for(block, flat_values.size, 1, passes=3 if narrow_to_positive else 1)
    return result


class Dropout(Function):
    """dropout(x, p) for 0 < p < 1, training."""

    drops_non_positive = False  # ReluDropout: relu's mask joins dropout's

    def forward(self, x, p):
        self.p = p
        keep = self.backend.keep_mask(x.shape, p)
        self.save_for_backward(keep)  # narrowed in place below when drops_non_positive: still the mask saved
        return masked_scaled(self.backend, x, keep, 1.0 / (1.0 - p), narrow_to_positive=self.drops_non_positive)

    def backward_arrays(self, grad):
        (keep,) = self.saved_arrays
        return masked_scaled(self.backend, grad, keep, 1.0 / (1.0 - self.p))

    def backward(self, grad):
        (keep,) = self.saved_tensors
        # d(x * keep * scale)/dx: the reference's two multiplies give grad * keep * scale. For
        # relu_dropout `keep` already holds relu's indicator too, whose own derivative is zero.
        return F.scale_by_keep_mask(grad, keep, self.p)


class ReluDropout(Dropout):
    """dropout(relu(x), p): one bool mask, kept by dropout AND positive, serves both."""

    drops_non_positive = True
