"""Kernel for F.linear: y = x @ weight.mT + bias as one node.

Replaces: the reference's transpose, matmul and broadcast add (three nodes). Saves: x is
flattened to 2-D, so that forward and both products of the backward are single GEMMs
(the reference's batched matmul sums the weight's gradient over the batch afterwards);
the bias is added row block by row block on every core; and the bias and weight gradients
come from two GEMM/GEMV calls instead of a sum over the batch dims.
"""
from .. import functional as F
from ..autograd import Function
from .rows import column_sums
from .through_reference import gradient_through_reference


class Linear(Function):
    def forward(self, x, weight, bias):
        self.save_for_backward(x, weight, bias)
        x2 = x.reshape(-1, x.shape[-1])
        y = x2 @ weight.T
        if bias is not None:
            def add_bias(start, stop):
                rows = y[start:stop]
                rows += bias  # in place on the view (`y[start:stop] += bias` would also write it back)

            self.backend.parallel_for(add_bias, y.shape[0], y.shape[1])
        return y.reshape(x.shape[:-1] + (weight.shape[0],))

    def backward_arrays(self, grad):
        x, weight, _ = self.saved_arrays
        need_x, need_w, need_b = self.needs_input_grad
        g2 = grad.reshape(-1, grad.shape[-1])
        grad_x = (g2 @ weight).reshape(x.shape) if need_x else None
        grad_w = g2.T @ x.reshape(-1, x.shape[-1]) if need_w else None
        grad_b = column_sums(self.backend, g2) if need_b else None
        return grad_x, grad_w, grad_b

    def backward(self, grad):
        return gradient_through_reference(self, grad, self.saved_tensors, F.linear)
