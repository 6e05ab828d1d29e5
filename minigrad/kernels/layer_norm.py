"""Kernel for F.layer_norm: (x - mean) / sqrt(var + eps) * weight + bias in one node.

Replaces: the reference's mean, subtract, square, mean, add, rsqrt, multiply, multiply and add
(twelve nodes, as a mean is a sum and a multiply and rsqrt a sqrt and a divide; seven are a
pass over a full-size array, and the three full-size multiplies keep one for backward). Saves:
every pass over a block of rows is made while the block is in the cache, on every core, and
backward reuses the normalised x saved by forward:

    dx = rstd * (g - mean(g) - n * mean(g * n))     with g = grad * weight, n = normalised x

Row means are GEMVs (rows.py). `normalize_rows` and `layer_norm_backward_rows` are shared with
the post-LN residual exit (residual_exit.py), which forms its sum inside the same blocks.
"""
import math

from .. import functional as F
from ..autograd import Function
from .rows import column_sums, mean_column, row_means
from .through_reference import gradient_through_reference


def normalize_rows(backend, x_rows, scale, shift, eps, fill_rows=None):
    """layer_norm of each row of the 2-D `x_rows` -> (y, normalised x, 1/std as a column).

    `fill_rows(start, stop)`, if given, first writes those rows of `x_rows` inside the same block
    (the residual exit forms its sum there, while the block is in the cache)."""
    xp = backend.xp
    features = x_rows.shape[1]
    y, normalized = xp.empty_like(x_rows), xp.empty_like(x_rows)
    rstd = xp.empty((x_rows.shape[0], 1), dtype=x_rows.dtype)

    def rows(start, stop):
        if fill_rows is not None:
            fill_rows(start, stop)
        x, n, r, out = x_rows[start:stop], normalized[start:stop], rstd[start:stop], y[start:stop]
        xp.subtract(x, row_means(backend, x), out=n)                        # centred
        xp.matmul(n * n, mean_column(backend, features, n.dtype), out=r)    # variance
        r += eps
        xp.sqrt(r, out=r)
        xp.divide(1, r, out=r)                                              # 1 / sqrt(var + eps)
        n *= r
        if scale is not None:
            xp.multiply(n, scale, out=out)
        else:
            out[...] = n
        if shift is not None:
            out += shift

    backend.parallel_for(rows, x_rows.shape[0], features, passes=6 if fill_rows is None else 9)
    return y, normalized, rstd


def layer_norm_backward_rows(backend, grad_rows, normalized, rstd, scale, need_x, need_w, need_b, use_rows=None):
    """Gradients of layer_norm for 2-D rows -> (dx or None, dweight or None, dbias or None), flat.

    `use_rows(start, stop, dx_rows)`, if given, runs on each block of dx while it is in the cache."""
    xp = backend.xp
    g_times_n = xp.empty_like(grad_rows) if need_w else None
    grad_x = xp.empty_like(grad_rows) if need_x else None

    def rows(start, stop):
        g, n = grad_rows[start:stop], normalized[start:stop]
        if need_w:
            xp.multiply(g, n, out=g_times_n[start:stop])
        if need_x:
            gx = grad_x[start:stop]
            if scale is not None:
                xp.multiply(g, scale, out=gx)
            else:
                gx[...] = g
            projection = row_means(backend, gx * n)
            gx -= row_means(backend, gx)
            gx -= n * projection
            gx *= rstd[start:stop]
            if use_rows is not None:
                use_rows(start, stop, gx)

    backend.parallel_for(rows, grad_rows.shape[0], grad_rows.shape[1], passes=8 if use_rows is None else 10)
    return (grad_x, column_sums(backend, g_times_n) if need_w else None,
            column_sums(backend, grad_rows) if need_b else None)


class LayerNorm(Function):
    def forward(self, x, weight, bias, axes, eps):
        self.axes, self.eps = axes, eps
        features = math.prod(x.shape[x.ndim - len(axes):])
        scale = weight.reshape(features) if weight is not None else None
        shift = bias.reshape(features) if bias is not None else None
        y, normalized, rstd = normalize_rows(self.backend, x.reshape(-1, features), scale, shift, eps)
        self.save_for_backward(x, weight, bias, normalized, rstd)
        return y.reshape(x.shape)

    def backward_arrays(self, grad):
        x, weight, _, normalized, rstd = self.saved_arrays
        need_x, need_w, need_b = self.needs_input_grad
        features = normalized.shape[1]
        scale = weight.reshape(features) if weight is not None else None
        grad_x, grad_w, grad_b = layer_norm_backward_rows(self.backend, grad.reshape(-1, features), normalized,
                                                          rstd, scale, need_x, need_w, need_b)
        affine_shape = x.shape[x.ndim - len(self.axes):]
        return (grad_x.reshape(x.shape) if need_x else None, grad_w.reshape(affine_shape) if need_w else None,
                grad_b.reshape(affine_shape) if need_b else None)

    def backward(self, grad):
        x, weight, bias, _, _ = self.saved_tensors
        shape = x.shape[x.ndim - len(self.axes):]
        return gradient_through_reference(self, grad, (x, weight, bias),
                                          lambda x, w, b: F.layer_norm(x, shape, w, b, self.eps))

