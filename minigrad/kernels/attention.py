"""Kernel for F.multi_head_attention: everything between the input and output projections of
multi-head attention, as one node:

    split heads -> q @ k^T -> scaled, masked softmax -> dropout -> @ v -> merge heads

Replaces: the reference's ~12 nodes forward and as many backward (head slices, transposes,
matmuls, scale, masked_fill, softmax, dropout), each with Python overhead and, for the three
head slices, a full-size zero gradient each; at small sizes that overhead is most of a step.
Saves: forward and backward run on raw arrays, a block of sentences at a time on every core,
the heads are views of the projections (no copies), and the q, k, v gradients are written
straight into one buffer in the projections' layout (no zeros, no scatter).

Softmax and its backward on arrays are written here once; the reference's are in
minigrad/ops/softmax.py.
"""
import math

from .. import functional as F
from ..autograd import Function
from ..tensor import Tensor
from .rows import row_sums
from .through_reference import gradient_through_reference


def max_keys(xp, x):
    """x (..., S) maxed over the keys, keeping the dim.

    NumPy reduces a short last axis (the S keys, 16 to 64) one row at a time; over the leading axis of a
    transposed copy, (S, rows), the same max is an elementwise max of whole contiguous rows: 3 to 5x
    faster here, copy included. Exact: a max does not round.
    """
    keys_first = xp.ascontiguousarray(x.reshape(-1, x.shape[-1]).T)
    return keys_first.max(axis=0).reshape(x.shape[:-1] + (1,))


def masked_softmax_arrays(backend, scores, blocked, scale, out=None):
    """softmax(scale * scores) over the last axis on raw arrays, blocked positions (True) exactly 0.

    A row whose keys are all blocked is all -inf: its max is lifted to the lowest finite number, so
    exp gives 0 everywhere, and its total of 0 is lifted to 1 (any other row's total is at least 1, the
    exp(0) of its max), so the row comes out as zeros, not NaN -- as the reference's softmax does.
    """
    xp = backend.xp
    x = xp.multiply(scores, scale, out=out)             # a fresh array (or `out`): safe to edit in place
    if blocked is not None:                             # (B,1,1,S) or (B,1,T,T): as -inf / 0 at its own
        x += xp.where(blocked, x.dtype.type(-xp.inf), x.dtype.type(0))  # small size, then one broadcast add
    row_max = max_keys(xp, x)
    xp.maximum(row_max, xp.finfo(x.dtype).min, out=row_max)
    x -= row_max
    xp.exp(x, out=x)
    total = row_sums(backend, x)
    xp.maximum(total, 1, out=total)
    x /= total
    return x


def softmax_backward_arrays(backend, y, grad, scale):
    """d softmax(scale * s) / ds on arrays: scale * y * (g - sum(g * y)); blocked entries (y = 0) get 0."""
    gy = grad * y
    gy -= y * row_sums(backend, gy)
    gy *= scale
    return gy


def _batch_rows(blocked, start, stop):
    """The mask for sentences start..stop: its own rows, or all of it when it broadcasts over the batch."""
    if blocked is None or blocked.ndim < 4 or blocked.shape[0] == 1:
        return blocked
    return blocked[start:stop]


class Attention(Function):
    """Inputs: `queries` (B, T, 3D) holding q, k and v side by side with `keys_values` None
    (self-attention), or (B, T, D) with `keys_values` (B, S, 2D) holding k and v. The attention
    weights (B, H, T, S), before dropout, are appended to `weights_out` (a node has one output)."""

    def forward(self, queries, keys_values, blocked, n_heads, dropout_p, weights_out):
        xp = self.xp
        self.n_heads, self.p = n_heads, dropout_p
        batch, length = queries.shape[:2]
        width = queries.shape[2] // (3 if keys_values is None else 1)
        key_length = length if keys_values is None else keys_values.shape[1]
        self.scale = 1.0 / math.sqrt(width // n_heads)
        weights = xp.empty((batch, n_heads, length, key_length), dtype=queries.dtype)
        keep = self.backend.keep_mask(weights.shape, dropout_p) if dropout_p > 0 else None
        context = xp.empty((batch, length, width), dtype=queries.dtype)

        def sentences(start, stop):  # a block of the batch; blocks run on all cores
            q, k, v = self._heads(queries, keys_values, start, stop)
            w = masked_softmax_arrays(self.backend, q @ k.swapaxes(-1, -2), _batch_rows(blocked, start, stop),
                                      self.scale, out=weights[start:stop])
            if keep is not None:
                w = w * keep[start:stop]
                w *= 1.0 / (1.0 - dropout_p)
            (context_heads,) = F.split_heads(context[start:stop], 1, self.n_heads)  # a view: heads merge as written
            xp.matmul(w, v, out=context_heads)

        self.backend.parallel_for(sentences, batch, weights[0].size, passes=12)
        self.save_for_backward(queries, keys_values, blocked, weights, keep)
        weights_out.append(weights)
        return context

    def _heads(self, queries, keys_values, start, stop):
        """q, k, v (b, H, L, d_k) of sentences start..stop, as views of the projections."""
        if keys_values is None:
            return F.split_heads(queries[start:stop], 3, self.n_heads)
        (q,), (k, v) = F.split_heads(queries[start:stop], 1, self.n_heads), \
            F.split_heads(keys_values[start:stop], 2, self.n_heads)
        return q, k, v

    def backward_arrays(self, grad):
        xp = self.xp
        queries, keys_values, _, weights, keep = self.saved_arrays
        self_attention = keys_values is None
        dropout_scale = 1.0 / (1.0 - self.p)
        # Each gradient is written straight into the head layout of its input: no zeros, no scatter.
        g_queries = xp.empty_like(queries)
        g_keys_values = g_queries if self_attention else xp.empty_like(keys_values)

        def sentences(start, stop):
            q, k, v = self._heads(queries, keys_values, start, stop)
            g_q, g_k, g_v = self._heads(g_queries, None if self_attention else g_keys_values, start, stop)
            w = weights[start:stop]
            dropped = w
            if keep is not None:
                dropped = w * keep[start:stop]
                dropped *= dropout_scale
            (g_context,) = F.split_heads(grad[start:stop], 1, self.n_heads)     # (b, H, T, d_k)
            g_dropped = g_context @ v.swapaxes(-1, -2)
            if keep is not None:
                g_dropped *= keep[start:stop]
                g_dropped *= dropout_scale
            g_scores = softmax_backward_arrays(self.backend, w, g_dropped, self.scale)
            xp.matmul(g_scores, k, out=g_q)
            xp.matmul(g_scores.swapaxes(-1, -2), q, out=g_k)
            xp.matmul(dropped.swapaxes(-1, -2), g_context, out=g_v)

        self.backend.parallel_for(sentences, weights.shape[0], weights[0].size, passes=16)
        return g_queries, (None if self_attention else g_keys_values), None

    def backward(self, grad):
        queries, keys_values, blocked, _, keep = self.saved_tensors

        def reference(queries, keys_values, blocked):  # the same dropout mask, through the composed ops
            return F.attention_with_keep_mask(queries, keys_values, self.n_heads, blocked, keep, self.p)[0]

        return gradient_through_reference(self, grad, (queries, keys_values, blocked), reference)


def attention(queries, keys_values, n_heads, blocked, dropout_p):
    """The kernel behind F.multi_head_attention -> (context (B, T, D), weights (B, H, T, S), no graph)."""
    weights = []
    context = Attention.apply(queries, keys_values, blocked, n_heads=n_heads, dropout_p=dropout_p, weights_out=weights)
    return context, Tensor._make(weights[0], context.backend)
