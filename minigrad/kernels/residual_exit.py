"""Kernel for F.dropout_add_layer_norm: layer_norm(residual + dropout(x)) in one node, the exit
of every sub-layer of a post-LN Transformer.

Replaces: the reference's dropout, add and layer_norm (the dropout two nodes, the add one,
the layer_norm twelve, see layer_norm.py). Saves: the sum is formed block by block inside
LayerNorm's kernel and normalised while it is in the cache (no separate dropped array), and
backward is LayerNorm's, with x's masked gradient written inside the same blocks; the
residual's gradient is the sum's itself.
"""
import math

from .. import functional as F
from ..autograd import Function
from .layer_norm import layer_norm_backward_rows, normalize_rows
from .through_reference import gradient_through_reference


class DropoutAddLayerNorm(Function):
    def forward(self, x, residual, weight, bias, p, axes, eps):
        xp = self.xp
        self.p, self.axes, self.eps = p, axes, eps
        keep = self.backend.keep_mask(x.shape, p) if p > 0 else None  # p = 0: eval, or no dropout
        scale = 1.0 / (1.0 - p)
        features = math.prod(x.shape[x.ndim - len(axes):])
        x_rows, residual_rows = x.reshape(-1, features), residual.reshape(-1, features)
        summed_rows = xp.empty_like(x_rows)
        keep_rows = keep.reshape(-1, features) if keep is not None else None

        def form_sum(start, stop):  # LayerNorm's kernel calls this on each block before normalising it
            out = summed_rows[start:stop]
            if keep_rows is None:
                xp.add(x_rows[start:stop], residual_rows[start:stop], out=out)
                return
            xp.multiply(x_rows[start:stop], keep_rows[start:stop], out=out)
            out *= scale
            out += residual_rows[start:stop]

        y, normalized, rstd = normalize_rows(
            self.backend, summed_rows, weight.reshape(features) if weight is not None else None,
            bias.reshape(features) if bias is not None else None, eps, fill_rows=form_sum)
        self.save_for_backward(x, residual, weight, bias, keep, normalized, rstd)
        return y.reshape(x.shape)

    def backward_arrays(self, grad):
        x, _, weight, _, keep, normalized, rstd = self.saved_arrays
        need_x, need_residual, need_w, need_b = self.needs_input_grad
        features = normalized.shape[1]
        grad_x = mask_rows = None
        if need_x and keep is not None:  # x's gradient is the sum's, masked and scaled: made block by block
            grad_x = self.xp.empty(x.shape, dtype=grad.dtype)
            keep_rows, grad_x_rows, scale = keep.reshape(-1, features), grad_x.reshape(-1, features), 1 / (1 - self.p)

            def mask_rows(start, stop, grad_summed_rows):
                out = grad_x_rows[start:stop]
                self.xp.multiply(grad_summed_rows, keep_rows[start:stop], out=out)
                out *= scale

        grad_summed, grad_w, grad_b = layer_norm_backward_rows(  # LayerNorm's input is the sum
            self.backend, grad.reshape(-1, features), normalized, rstd,
            weight.reshape(features) if weight is not None else None, True, need_w, need_b, use_rows=mask_rows)
        grad_summed = grad_summed.reshape(x.shape)
        if need_x and keep is None:
            grad_x = grad_summed
        affine_shape = x.shape[x.ndim - len(self.axes):]
        return (grad_x, grad_summed if need_residual else None, grad_w.reshape(affine_shape) if need_w else None,
                grad_b.reshape(affine_shape) if need_b else None)

    def backward(self, grad):
        x, residual, weight, bias, keep, _, _ = self.saved_tensors
        shape = x.shape[x.ndim - len(self.axes):]

        def reference(x, residual, weight, bias):  # the same dropout mask, through the composed ops
            dropped = x if keep is None else F.scale_by_keep_mask(x, keep, self.p)
            return F.layer_norm(residual + dropped, shape, weight, bias, self.eps)

        return gradient_through_reference(self, grad, (x, residual, weight, bias), reference)
