"""Multi-head scaled dot-product attention (section 3.2 of the paper).

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k) + mask) V

Shapes (B batch, H heads, T queries, S keys, D = H * d_k):

    query (B, T, D), key/value (B, S, D)
      -> projections, one GEMM for q, k and v together in self-attention (D -> 3D),
         one for k and v together in cross-attention (D -> 2D)
      -> heads split by one reshape + transpose: (B, H, T, d_k), (B, H, S, d_k)
      -> scores q @ k^T (B, H, T, S) -> masked, scaled softmax -> dropout -> @ v (B, H, T, d_k)
      -> heads merged (B, T, D) -> output projection (B, T, D)

The parameters are laid out as torch.nn.MultiheadAttention's: `in_proj_weight`
(3D, D) holds the q, k and v projections stacked by rows (head h uses rows
h*d_k:(h+1)*d_k of each block), `in_proj_bias` (3D,), and `out_proj`.
"""
import math

import minigrad.functional as F
import nn
from minigrad import Function, Tensor, cat, is_grad_enabled


def _keys_first(xp, x):
    """A contiguous copy of x (..., S) laid out as (S, ...), for reducing over the keys.

    NumPy reduces a short last axis (the S keys of attention, 16 to 64) one row at a
    time; over a leading axis a reduction is an elementwise max/sum of whole contiguous
    slices: 3 to 5x faster here, copy included.
    """
    return xp.ascontiguousarray(xp.moveaxis(x, -1, 0))


class MaskedSoftmax(Function):
    """softmax(scale * scores), with blocked positions (mask True) taking probability exactly 0.

    One graph node instead of three (scale, masked_fill, softmax): attention scores
    are the largest activations of the model, so every pass over them counts.
    A row whose keys are all blocked gives zeros, and a zero gradient, not NaN.
    """

    def forward(self, scores, mask, scale):
        xp = self.xp
        self.scale = scale
        x = scores * scale                                  # a fresh array: safe to edit in place below
        if mask is not None:
            xp.copyto(x, -xp.inf, where=mask)                 # mask broadcasts (B,1,1,S) or (B,1,T,T)
        row_max = _keys_first(xp, x).max(axis=0)[..., None]  # exact: a max does not round
        xp.copyto(row_max, 0, where=~xp.isfinite(row_max))  # all-blocked row: exp(-inf - 0) = 0
        x -= row_max
        xp.exp(x, out=x)
        total = _keys_first(xp, x).sum(axis=0)[..., None]
        xp.copyto(total, 1, where=total == 0)               # all-blocked row: 0 / 1 = 0 (copyto, not a
                                                            # boolean-mask write: no host sync on CuPy)
        x /= total
        self.save_for_backward(x)
        return x

    def backward(self, grad):
        # d softmax: y * (g - sum(g * y)); blocked entries have y = 0, so their gradient is 0.
        (y,) = self.saved_tensors
        if not is_grad_enabled():  # nothing to record: the same formula on arrays, in place
            xp, y = self.xp, y.data
            gy = grad.data * y
            gy -= y * _keys_first(xp, gy).sum(axis=0)[..., None]
            gy *= self.scale
            return Tensor._make(gy, self.backend), None
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

    # -- projections and head layout --------------------------------------------------------
    def _heads(self, x, n_parts):
        """(B, L, n_parts*D) -> n_parts tensors (B, H, L, d_k), with one reshape and one permute."""
        batch, length, _ = x.shape
        x = x.reshape(batch, length, n_parts, self.n_heads, self.d_head).permute(2, 0, 3, 1, 4)
        return [x[i] for i in range(n_parts)]

    def project_self(self, x):
        """q, k, v of a self-attention input x (B, T, D): one (D -> 3D) GEMM."""
        return self._heads(F.linear(x, self.in_proj_weight, self.in_proj_bias), 3)

    def project_query(self, x):
        d = self.d_model
        return self._heads(F.linear(x, self.in_proj_weight[:d], self.in_proj_bias[:d]), 1)[0]

    def project_key_value(self, memory):
        """k, v of the encoder's memory (B, S, D): one (D -> 2D) GEMM, done once per source when decoding."""
        d = self.d_model
        return self._heads(F.linear(memory, self.in_proj_weight[d:], self.in_proj_bias[d:]), 2)

    # -- attention ----------------------------------------------------------------------------
    def attend(self, q, k, v, mask):
        """Heads (B,H,T,d_k) x (B,H,S,d_k) -> output (B,T,D) and weights (B,H,T,S)."""
        context, weights = scaled_dot_product_attention(q, k, v, mask, self.dropout, self.training)
        batch, _, length, _ = context.shape
        merged = context.transpose(1, 2).reshape(batch, length, self.d_model)
        return self.out_proj(merged), weights

    def forward(self, query, key_value, mask=None, cache=None):
        """query (B,T,D); key_value (B,S,D) (pass `query` itself for self-attention); mask (..,T,S), True = blocked.

        With a `cache` dict (incremental decoding, no gradients), self-attention appends this step's
        keys/values to the cached ones, and cross-attention computes the memory's keys/values only once.
        Returns (output (B,T,D), weights (B,H,T,S)).
        """
        if key_value is query:
            q, k, v = self.project_self(query)
            if cache is not None:
                if "k" in cache:
                    k, v = cat([cache["k"], k], dim=2), cat([cache["v"], v], dim=2)
                cache["k"], cache["v"] = k, v
        else:
            q = self.project_query(query)
            if cache is not None and "k" in cache:
                k, v = cache["k"], cache["v"]
            else:
                k, v = self.project_key_value(key_value)
                if cache is not None:
                    cache["k"], cache["v"] = k, v
        return self.attend(q, k, v, mask)

    def extra_repr(self):
        return f"d_model={self.d_model}, n_heads={self.n_heads}, dropout={self.dropout}"
