"""Multi-head scaled dot-product attention (section 3.2 of the paper).

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k) + mask) V

Shapes (B batch, H heads, T queries, S keys, D = H * d_k):

    query (B, T, D), key/value (B, S, D)
      -> projections, one GEMM for q, k and v together in self-attention (D -> 3D),
         one for k and v together in cross-attention (D -> 2D)
      -> heads split by one reshape + transpose: (B, H, T, d_k), (B, H, S, d_k)
      -> scores q @ k^T (B, H, T, S) -> masked, scaled softmax -> dropout -> @ v (B, H, T, d_k)
      -> heads merged (B, T, D) -> output projection (B, T, D)

In training everything between the two projections is one graph node (FusedAttention,
hand-written backward on arrays); `attention_composed` spells the same computation
with tensor ops and is what the node's double-backward differentiates. Incremental
decoding, which keeps per-head keys/values in a cache, uses the composed ops.

The parameters are laid out as torch.nn.MultiheadAttention's: `in_proj_weight`
(3D, D) holds the q, k and v projections stacked by rows (head h uses rows
h*d_k:(h+1)*d_k of each block), `in_proj_bias` (3D,), and `out_proj`.
"""
import math

import minigrad.functional as F
import nn
from minigrad import Function, Tensor, cat, is_grad_enabled
from minigrad.autograd import grad as autograd_grad


def _max_keys(xp, x):
    """x (..., S) maxed over the keys, keeping the dim.

    NumPy reduces a short last axis (the S keys of attention, 16 to 64) one row at a time;
    over the leading axis of a transposed copy, (S, rows), the same max is an elementwise
    max of whole contiguous rows: 3 to 5x faster here, copy included. Exact: a max does not round.
    """
    keys_first = xp.ascontiguousarray(x.reshape(-1, x.shape[-1]).T)
    return keys_first.max(axis=0).reshape(x.shape[:-1] + (1,))


def _sum_keys(backend, x):
    """x (..., S) summed over the keys, keeping the dim: as a product with a ones column, one
    GEMV that reads x once (faster again than a transposed copy)."""
    return x @ backend.constant_column(x.shape[-1], 1.0, x.dtype)


def _masked_softmax_arrays(backend, scores, mask, scale, out=None):
    """softmax(scale * scores) on raw arrays, blocked positions (mask True) exactly 0.

    A row whose keys are all blocked is all -inf: its max is lifted to the lowest finite
    number, so exp gives 0 everywhere, and its total of 0 is lifted to 1 (any other row's
    total is at least 1, the exp(0) of its max), so the row comes out as zeros, not NaN.
    """
    xp = backend.xp
    x = xp.multiply(scores, scale, out=out)             # a fresh array (or `out`): safe to edit in place
    if mask is not None:                                # mask (B,1,1,S) or (B,1,T,T): as -inf / 0 at its
        x += xp.where(mask, x.dtype.type(-xp.inf), x.dtype.type(0))  # own small size, then one broadcast add
    row_max = _max_keys(xp, x)
    xp.maximum(row_max, xp.finfo(x.dtype).min, out=row_max)
    x -= row_max
    xp.exp(x, out=x)
    total = _sum_keys(backend, x)
    xp.maximum(total, 1, out=total)
    x /= total
    return x


def _softmax_backward_arrays(backend, y, grad, scale):
    """d softmax(scale * s) / ds on arrays: scale * y * (g - sum(g * y)); blocked entries (y = 0) get 0."""
    gy = grad * y
    gy -= y * _sum_keys(backend, gy)
    gy *= scale
    return gy


class MaskedSoftmax(Function):
    """softmax(scale * scores), with blocked positions (mask True) taking probability exactly 0.

    One graph node instead of three (scale, masked_fill, softmax): attention scores
    are the largest activations of the model, so every pass over them counts.
    A row whose keys are all blocked gives zeros, and a zero gradient, not NaN.
    """

    def forward(self, scores, mask, scale):
        self.scale = scale
        y = _masked_softmax_arrays(self.backend, scores, mask, scale)
        self.save_for_backward(y)
        return y

    def backward(self, grad):
        (y,) = self.saved_tensors
        if not is_grad_enabled():  # nothing to record: the same formula on arrays, in place
            gradient = _softmax_backward_arrays(self.backend, y.data, grad.data, self.scale)
            return Tensor._make(gradient, self.backend), None
        gy = grad * y
        return (gy - y * gy.sum(-1, keepdim=True)) * self.scale, None


def masked_softmax(scores, mask, scale=1.0):
    """softmax(scale * scores) over the last dim, with zero weight where the bool `mask` is True."""
    return MaskedSoftmax.apply(scores, mask, scale=scale)


def scaled_dot_product_attention(q, k, v, mask=None, dropout_p=0.0, training=False):
    """q (B,H,T,d_k), k and v (B,H,S,d_k), mask broadcastable to (B,H,T,S), True = blocked.

    Returns (context (B,H,T,d_k), attention weights (B,H,T,S) before dropout).
    """
    weights = masked_softmax(q @ k.mT, mask, 1.0 / math.sqrt(q.shape[-1]))
    return F.dropout(weights, dropout_p, training) @ v, weights


def split_heads(x, n_parts, n_heads):
    """(B, L, n_parts*D) -> n_parts tensors (B, H, L, d_k), with one reshape and one permute.

    Works on Tensors and on raw arrays alike (both have reshape and transpose(axes)).
    """
    batch, length, width = x.shape
    x = x.reshape(batch, length, n_parts, n_heads, width // (n_parts * n_heads))
    x = x.permute(2, 0, 3, 1, 4) if isinstance(x, Tensor) else x.transpose(2, 0, 3, 1, 4)
    return [x[i] for i in range(n_parts)]


def merge_heads(x):
    """(B, H, T, d_k) -> (B, T, H*d_k): the inverse of split_heads for one part."""
    batch, heads, length, d_head = x.shape
    x = x.transpose(1, 2) if isinstance(x, Tensor) else x.transpose(0, 2, 1, 3)
    return x.reshape(batch, length, heads * d_head)


class FusedAttention(Function):
    """Everything between the input and output projections, as ONE graph node:

        split heads -> q k^T -> masked, scaled softmax -> dropout -> @ v -> merge heads

    Composed from tensor ops this is ~12 nodes forward and as many backward, each with
    Python overhead and, for the three head slices, a full-size zero gradient each;
    at small sizes that overhead is most of a training step. Here forward and backward
    are written on raw arrays, and the q, k, v gradients land in one buffer.

    Inputs: `queries` (B, T, D) or, for self-attention, (B, T, 3D) holding q, k and v with
    `keys_values` None; else `keys_values` (B, S, 2D) holding k and v.
    Under create_graph, backward differentiates the composed tensor ops instead (same
    dropout mask), so second derivatives stay exact.
    """

    def forward(self, queries, keys_values, mask, n_heads, dropout_p, weights_out):
        xp = self.xp
        self.n_heads, self.dropout_scale, self.mask = n_heads, 1.0 / (1.0 - dropout_p), mask
        batch, length = queries.shape[:2]
        width = queries.shape[2] // (3 if keys_values is None else 1)
        key_length = length if keys_values is None else keys_values.shape[1]
        self.scale = 1.0 / math.sqrt(width // n_heads)
        weights = xp.empty((batch, n_heads, length, key_length), dtype=queries.dtype)
        keep = self.backend.keep_mask(weights.shape, dropout_p) if dropout_p > 0 else None
        context = xp.empty((batch, length, width), dtype=queries.dtype)

        def sentences(start, stop):  # a block of the batch; blocks run on all cores
            q, k, v = self._heads(queries, keys_values, start, stop)
            w = _masked_softmax_arrays(self.backend, q @ k.swapaxes(-1, -2), _batch_rows(mask, start, stop), self.scale,
                                       out=weights[start:stop])
            if keep is not None:
                w = w * keep[start:stop]
                w *= self.dropout_scale
            (context_heads,) = split_heads(context[start:stop], 1, self.n_heads)  # a view: heads merge as written
            xp.matmul(w, v, out=context_heads)

        self.backend.parallel_for(sentences, batch, weights[0].size, passes=12)
        self.save_for_backward(queries, keys_values, weights, keep)
        weights_out.append(weights)
        return context

    def _heads(self, queries, keys_values, start, stop):
        """q, k, v (b, H, L, d_k) of sentences start..stop, as views of the projections."""
        if keys_values is None:
            return split_heads(queries[start:stop], 3, self.n_heads)
        (q,), (k, v) = split_heads(queries[start:stop], 1, self.n_heads), \
            split_heads(keys_values[start:stop], 2, self.n_heads)
        return q, k, v

    def backward(self, grad):
        queries, keys_values, weights, keep = self.saved_tensors
        if is_grad_enabled():
            return self._backward_composed(grad, queries, keys_values, keep)
        xp = self.xp
        queries, weights, g = queries.data, weights.data, grad.data
        self_attention = keys_values is None
        keys_values = None if self_attention else keys_values.data
        keep = None if keep is None else keep.data
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
                dropped *= self.dropout_scale
            (g_context,) = split_heads(g[start:stop], 1, self.n_heads)       # (b, H, T, d_k)
            g_dropped = g_context @ v.swapaxes(-1, -2)
            if keep is not None:
                g_dropped *= keep[start:stop]
                g_dropped *= self.dropout_scale
            g_scores = _softmax_backward_arrays(self.backend, w, g_dropped, self.scale)
            xp.matmul(g_scores, k, out=g_q)
            xp.matmul(g_scores.swapaxes(-1, -2), q, out=g_k)
            xp.matmul(dropped.swapaxes(-1, -2), g_context, out=g_v)

        self.backend.parallel_for(sentences, weights.shape[0], weights[0].size, passes=16)
        wrap = lambda array: Tensor._make(array, self.backend)  # noqa: E731
        return wrap(g_queries), (None if self_attention else wrap(g_keys_values)), None

    def _backward_composed(self, grad, queries, keys_values, keep):
        """The same gradient through the composed, recorded tensor ops: differentiable again."""
        inputs = [x for x in (queries, keys_values) if x is not None and x.requires_grad]
        output = attention_composed(queries, keys_values, self.mask, self.n_heads, keep, self.dropout_scale)
        grads = dict(zip(inputs, autograd_grad(output, inputs, grad, create_graph=True)))
        return grads.get(queries), (grads.get(keys_values) if keys_values is not None else None), None


def _project(x, weight, bias):
    """x (..., D_in) @ weight^T + bias on raw arrays: F.linear's forward, for the no-gradient decoding path."""
    y = x.reshape(-1, x.shape[-1]) @ weight.T
    y += bias
    return y.reshape(x.shape[:-1] + (weight.shape[0],))


def _batch_rows(mask, start, stop):
    """The mask for sentences start..stop: its own rows, or all of it when it broadcasts over the batch."""
    if mask is None or mask.ndim < 4 or mask.shape[0] == 1:
        return mask
    return mask[start:stop]


def attention_composed(queries, keys_values, mask, n_heads, keep=None, dropout_scale=1.0):
    """What FusedAttention computes, from tensor ops (a given dropout `keep` mask): its reference."""
    if keys_values is None:
        q, k, v = split_heads(queries, 3, n_heads)
    else:
        (q,), (k, v) = split_heads(queries, 1, n_heads), split_heads(keys_values, 2, n_heads)
    weights = masked_softmax(q @ k.mT, mask, 1.0 / math.sqrt(q.shape[-1]))
    if keep is not None:
        weights = weights * keep * dropout_scale
    return merge_heads(weights @ v)


def fused_attention(queries, keys_values, mask, n_heads, dropout_p=0.0, training=False):
    """Attention of projected inputs (see FusedAttention) -> (context (B, T, D), weights (B, H, T, S), no grad)."""
    weights = []
    context = FusedAttention.apply(queries, keys_values, mask, n_heads=n_heads,
                                   dropout_p=dropout_p if training else 0.0, weights_out=weights)
    return context, Tensor._make(weights[0], context.backend)


class MultiHeadAttention(nn.Module):
    """Self-attention (`forward(x, x, ...)` with the same tensor) or cross-attention (queries from the decoder,
    keys and values from the encoder's memory)."""

    def __init__(self, d_model, n_heads, dropout=0.0):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        self.d_model, self.n_heads, self.d_head, self.dropout = d_model, n_heads, d_model // n_heads, dropout
        projection = nn.Linear(d_model, 3 * d_model)
        self.in_proj_weight, self.in_proj_bias = projection.weight, projection.bias  # (3D, D), (3D,)
        self.out_proj = nn.Linear(d_model, d_model)
        self.reset_parameters()

    def reset_parameters(self):
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.in_proj_bias)
        nn.init.zeros_(self.out_proj.bias)

    # -- projections ---------------------------------------------------------------------------
    def project_self(self, x):
        """A self-attention input x (B, T, D) -> q, k, v side by side (B, T, 3D): one (D -> 3D) GEMM."""
        return F.linear(x, self.in_proj_weight, self.in_proj_bias)

    def project_query(self, x):
        return F.linear(x, *self._in_proj_rows(0, self.d_model))

    def project_key_value(self, memory):
        """The encoder's memory (B, S, D) -> k, v side by side (B, S, 2D): one (D -> 2D) GEMM, once per source
        when decoding."""
        return F.linear(memory, *self._in_proj_rows(self.d_model, 3 * self.d_model))

    def _in_proj_rows(self, start, stop):
        """Rows start..stop of the stacked projection's weight and bias: recorded slices when gradients
        are on, plain views of the arrays otherwise (no graph op per decoding step)."""
        weight, bias = self.in_proj_weight, self.in_proj_bias
        if is_grad_enabled():
            return weight[start:stop], bias[start:stop]
        return Tensor._make(weight.data[start:stop], weight.backend), Tensor._make(bias.data[start:stop], bias.backend)

    # -- attention ----------------------------------------------------------------------------
    def forward(self, query, key_value, mask=None, cache=None):
        """query (B,T,D); key_value (B,S,D) (pass `query` itself for self-attention); mask (..,T,S), True = blocked.

        With a `cache` dict (incremental decoding, no gradients), self-attention appends this step's
        keys/values to the cached ones, and cross-attention computes the memory's keys/values only once.
        Returns (output (B,T,D), weights (B,H,T,S)).
        """
        if cache is not None:
            return self._forward_cached(query, key_value, mask, cache)
        if key_value is query:
            queries, keys_values = self.project_self(query), None
        else:
            queries, keys_values = self.project_query(query), self.project_key_value(key_value)
        context, weights = fused_attention(queries, keys_values, mask, self.n_heads, self.dropout, self.training)
        return self.out_proj(context), weights

    def _forward_cached(self, query, key_value, mask, cache):
        """Incremental decoding: heads split once, keys/values kept per head in `cache`.

        While decoding (no gradients, no dropout) everything here runs on raw arrays, the
        projections included: a step is one token's worth of math, and the tensor ops of the
        composed path (a dozen, each with its checks and bookkeeping) would cost more than it.
        """
        if is_grad_enabled() or (self.training and self.dropout > 0):
            return self._forward_cached_ops(query, key_value, mask, cache)
        backend = query.backend
        xp = backend.xp
        wrap = lambda array: Tensor._make(array, backend)  # noqa: E731
        weight, bias, width = self.in_proj_weight.data, self.in_proj_bias.data, self.d_model
        if key_value is query:
            q, k, v = split_heads(_project(query.data, weight, bias), 3, self.n_heads)
            if "k" in cache:
                k, v = xp.concatenate([cache["k"].data, k], axis=2), xp.concatenate([cache["v"].data, v], axis=2)
            cache["k"], cache["v"] = wrap(k), wrap(v)
        else:
            (q,) = split_heads(_project(query.data, weight[:width], bias[:width]), 1, self.n_heads)
            if "k" not in cache:
                keys_values = _project(key_value.data, weight[width:], bias[width:])
                cache["k"], cache["v"] = (wrap(a) for a in split_heads(keys_values, 2, self.n_heads))
            k, v = cache["k"].data, cache["v"].data
        mask = mask.data if isinstance(mask, Tensor) else mask
        weights = _masked_softmax_arrays(backend, q @ k.swapaxes(-1, -2), mask, 1.0 / math.sqrt(self.d_head))
        context = merge_heads(weights @ v)
        return wrap(_project(context, self.out_proj.weight.data, self.out_proj.bias.data)), wrap(weights)

    def _forward_cached_ops(self, query, key_value, mask, cache):
        """The same as _forward_cached, from recorded tensor ops (when gradients are wanted)."""
        if key_value is query:
            q, k, v = split_heads(self.project_self(query), 3, self.n_heads)
            if "k" in cache:
                k, v = cat([cache["k"], k], dim=2), cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        else:
            (q,) = split_heads(self.project_query(query), 1, self.n_heads)
            if "k" not in cache:
                cache["k"], cache["v"] = split_heads(self.project_key_value(key_value), 2, self.n_heads)
            k, v = cache["k"], cache["v"]
        context, weights = scaled_dot_product_attention(q, k, v, mask, self.dropout, self.training)
        return self.out_proj(merge_heads(context)), weights

    def extra_repr(self):
        return f"d_model={self.d_model}, n_heads={self.n_heads}, dropout={self.dropout}"
