"""softmax and log_softmax, fused and numerically stable.

Both subtract the row maximum before exponentiating, so inputs like [-1000, 1]
stay finite. A row whose every entry is -inf (a fully masked attention row) has
no maximum to subtract; it gives zeros and a zero gradient instead of NaN.
"""
from ..autograd import Function
from .reduction import normalize_dim


def _shifted(xp, x, axis):
    """x minus its row max (0 for all -inf rows), and exp of that."""
    row_max = x.max(axis=axis, keepdims=True)
    row_max = xp.where(xp.isfinite(row_max), row_max, 0)
    shifted = x - row_max
    return shifted, xp.exp(shifted)


class Softmax(Function):
    def forward(self, x, axis):
        self.axis = axis
        _, e = _shifted(self.xp, x, axis)
        total = e.sum(axis=axis, keepdims=True)
        # All -inf row: 0 / 1 = 0. (`where`, not a boolean-mask write: on CuPy that would sync with the host.)
        e /= self.xp.where(total == 0, 1, total)
        self.save_for_backward(e)
        return e

    def backward(self, grad):
        (y,) = self.saved_tensors
        return y * (grad - (grad * y).sum(self.axis, keepdim=True))


class LogSoftmax(Function):
    def forward(self, x, axis):
        self.axis = axis
        xp = self.xp
        shifted, e = _shifted(xp, x, axis)
        total = e.sum(axis=axis, keepdims=True)
        live_rows = total > 0
        y = xp.where(live_rows, shifted - xp.log(xp.where(live_rows, total, 1)), 0)
        self.save_for_backward(y, live_rows)
        return y

    def backward(self, grad):
        y, live_rows = self.saved_tensors
        return (grad - y.exp() * grad.sum(self.axis, keepdim=True)) * live_rows


def softmax(x, dim):
    return Softmax.apply(x, axis=normalize_dim(dim, x.ndim, "softmax"))


def log_softmax(x, dim):
    return LogSoftmax.apply(x, axis=normalize_dim(dim, x.ndim, "log_softmax"))
