"""Neural-network functions (what `torch.nn.functional` holds), written as the reference:
each one composes the primitive ops of minigrad.ops, whose backwards are Tensor ops
(embedding is the one op of its own, defined below).

    linear          x @ weight.mT + bias
    layer_norm      mean / var arithmetic
    dropout         x * keep * scale, with a bool mask from the device's generator
    relu_dropout    dropout(relu(x))
    dropout_add_layer_norm   layer_norm(residual + dropout(x))
    cross_entropy   log_softmax + gather (+ label smoothing), mean over the kept targets
    multi_head_attention   split heads, q k^T, masked softmax, dropout, @ v, merge heads

This is the code the docs teach. For these functions the fast path is chosen here and
nowhere else: unless reference mode is on (`minigrad.set_reference_mode(True)`,
MINIGRAD_REFERENCE=1), the lines marked "kernel:" hand the work to one fused node of
minigrad/kernels, which computes the same values and is tested against the code below (the
engine then picks that node's backward; optim.Adam picks its own kernel the same way).
Layers in `nn` and the Transformer only call these functions and never choose a path themselves.
"""
import math

from .autograd import Function, is_reference_mode
from .kernels.attention import attention as attention_kernel
from .kernels.cross_entropy import CrossEntropy as CrossEntropyKernel
from .kernels.dropout import Dropout as DropoutKernel, ReluDropout as ReluDropoutKernel
from .kernels.layer_norm import LayerNorm as LayerNormKernel
from .kernels.linear import Linear as LinearKernel
from .kernels.residual_exit import DropoutAddLayerNorm as DropoutAddLayerNormKernel
from .tensor import Tensor
from .ops.indexing import check_ids_in_range
from .ops import cat, gather, log_softmax, mean, relu, gelu, sigmoid, softmax, sum, tanh, where  # noqa: F401


def _use_kernels():
    return not is_reference_mode()


# -- linear ---------------------------------------------------------------------------------
def linear(x, weight, bias=None):
    """y = x W^T + b, with W of shape (out_features, in_features) as torch lays it out."""
    if x.shape[-1] != weight.shape[-1]:
        raise ValueError(f"linear: input of shape {x.shape} does not fit weight of shape {weight.shape} "
                         f"(expected last dim {weight.shape[-1]})")
    if _use_kernels():
        return LinearKernel.apply(x, weight, bias)  # kernel: one GEMM each way, x flattened to 2-D
    y = x @ weight.mT
    return y + bias if bias is not None else y


# -- layer norm -----------------------------------------------------------------------------
def _normalized_axes(x, normalized_shape):
    normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if tuple(x.shape[x.ndim - len(normalized_shape):]) != normalized_shape:
        raise ValueError(f"layer_norm: input of shape {x.shape} does not end in normalized_shape {normalized_shape}")
    return tuple(range(x.ndim - len(normalized_shape), x.ndim))


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """(x - mean) / sqrt(var + eps) * weight + bias over the last dims, with the biased variance."""
    axes = _normalized_axes(x, normalized_shape)
    if _use_kernels():
        return LayerNormKernel.apply(x, weight, bias, axes=axes, eps=eps)  # kernel: every pass per row block
    centered = x - x.mean(axes, keepdim=True)
    variance = (centered * centered).mean(axes, keepdim=True)
    y = centered * (variance + eps).rsqrt()
    if weight is not None:
        y = y * weight
    return y + bias if bias is not None else y


# -- dropout --------------------------------------------------------------------------------
def keep_mask(shape, p, backend):
    """A bool tensor, True with probability 1 - p: which elements dropout keeps (drawn from the
    device's generator by its backend; the kernels draw the same mask)."""
    return Tensor._make(backend.keep_mask(tuple(shape), p), backend)


def scale_by_keep_mask(x, keep, p):
    """x * keep / (1 - p): inverted dropout with a given mask (the survivors are scaled up, so that
    the expected value is unchanged and evaluation needs no rescaling)."""
    return x * keep * (1.0 / (1.0 - p))


def _check_probability(p, op="dropout"):
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{op}: p must be in [0, 1], got {p}")


def dropout(x, p=0.5, training=True):
    """Zero each element with probability p while training and scale the rest by 1 / (1 - p)."""
    _check_probability(p)
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    if _use_kernels():
        return DropoutKernel.apply(x, p=p)  # kernel: one pass per block, the bool mask kept
    return scale_by_keep_mask(x, keep_mask(x.shape, p, x.backend), p)


def relu_dropout(x, p=0.5, training=True):
    """dropout(relu(x), p, training): the feed-forward block's hidden activation."""
    _check_probability(p)
    if training and 0.0 < p < 1.0 and _use_kernels():
        return ReluDropoutKernel.apply(x, p=p)  # kernel: relu's mask joins dropout's in the same pass
    return dropout(relu(x), p, training)


def dropout_add_layer_norm(x, residual, p, normalized_shape, weight=None, bias=None, eps=1e-5, training=True):
    """layer_norm(residual + dropout(x, p, training)): how every sub-layer of a post-LN Transformer ends."""
    _check_probability(p)
    if _use_kernels() and not (training and p == 1.0) and x.shape == residual.shape and x.dtype == residual.dtype:
        axes = _normalized_axes(x, normalized_shape)  # kernel: the sum formed inside LayerNorm's blocks
        return DropoutAddLayerNormKernel.apply(x, residual, weight, bias, p=p if training else 0.0, axes=axes,
                                                 eps=eps)
    return layer_norm(residual + dropout(x, p, training), normalized_shape, weight, bias, eps)


# -- attention ------------------------------------------------------------------------------
def masked_softmax(scores, blocked=None, scale=1.0):
    """softmax(scale * scores) over the last dim, with weight exactly 0 where the bool `blocked` is True
    (broadcast to scores). A row whose every key is blocked gives zeros and a zero gradient, not NaN."""
    if scale != 1.0:
        scores = scores * scale
    if blocked is not None:
        scores = scores.masked_fill(blocked, -math.inf)
    return softmax(scores, -1)


def attention_weights(query, key, blocked=None, scale=None, bias=None):
    """softmax(query key^T * scale + bias) over the keys, zero where `blocked` is True: (..., T, S).

    `scale` defaults to 1 / sqrt(d_k): dot products of d_k-dimensional vectors grow like sqrt(d_k),
    and unscaled they would push the softmax into its flat, gradient-free tails."""
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = (query @ key.mT) * scale
    if bias is not None:
        scores = scores + bias
    return masked_softmax(scores, blocked)


def split_heads(x, n_parts, n_heads):
    """(B, L, n_parts * D) -> n_parts tensors (B, H, L, d_k): one reshape and one permute.

    Works on Tensors and on raw arrays alike (the attention kernel splits arrays with it)."""
    batch, length, width = x.shape
    x = x.reshape(batch, length, n_parts, n_heads, width // (n_parts * n_heads))
    x = x.permute(2, 0, 3, 1, 4) if isinstance(x, Tensor) else x.transpose(2, 0, 3, 1, 4)
    return [x[i] for i in range(n_parts)]


def merge_heads(x):
    """(B, H, T, d_k) -> (B, T, H * d_k): the inverse of split_heads for one part."""
    batch, heads, length, d_head = x.shape
    return x.transpose(1, 2).reshape(batch, length, heads * d_head)


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                                 enable_gqa=False):
    """torch.nn.functional.scaled_dot_product_attention: softmax(query key^T * scale + mask) value.

    query (..., L, E), key (..., S, E), value (..., S, Ev) -> (..., L, Ev). As in torch, a bool
    `attn_mask` is True where attention is ALLOWED (the opposite of masked_softmax's `blocked`), a
    float one is added to the scores, `is_causal` allows each query the keys up to its own position,
    `scale` defaults to 1 / sqrt(E), and dropout (no training flag here, as in torch) applies when
    dropout_p > 0. A query with no allowed key gets zeros, not NaN.
    """
    if enable_gqa:
        raise NotImplementedError("scaled_dot_product_attention: enable_gqa is not supported")
    if query.shape[-1] != key.shape[-1] or key.shape[-2] != value.shape[-2]:
        raise ValueError(f"scaled_dot_product_attention: query {query.shape}, key {key.shape} and value "
                         f"{value.shape} do not fit (query and key need one last dim, key and value one length)")
    blocked = bias = None
    if is_causal:
        if attn_mask is not None:
            raise ValueError("scaled_dot_product_attention: pass attn_mask or is_causal, not both (as torch)")
        length, key_length = query.shape[-2], key.shape[-2]
        blocked = Tensor._make(query.xp.triu(query.xp.ones((length, key_length), dtype=bool), 1), query.backend)
    elif attn_mask is not None and attn_mask.dtype.kind == "b":
        blocked = ~attn_mask
    elif attn_mask is not None:
        bias = attn_mask
    weights = attention_weights(query, key, blocked, scale, bias)
    return dropout(weights, dropout_p, training=dropout_p > 0) @ value


def multi_head_attention(queries, keys_values, n_heads, blocked=None, dropout_p=0.0, training=True):
    """Scaled dot-product attention on n_heads heads of projected inputs (section 3.2 of the paper):

        softmax(q k^T / sqrt(d_k), blocked positions excluded) v, on each head

    `queries` (B, T, 3D) holds q, k and v side by side (self-attention; `keys_values` None), or
    `queries` (B, T, D) the queries and `keys_values` (B, S, 2D) the keys and values. `blocked`
    (bool, broadcast to (B, H, T, S)) is True where a query may not look: padding, the future.
    Returns the context (B, T, D) with the heads merged, and the weights (B, H, T, S) before dropout,
    for inspection: without a graph, on both paths.
    """
    p = dropout_p if training else 0.0
    _check_probability(p)
    if p == 1.0:  # every weight dropped, as F.dropout(p=1): a zero context (and no division by 1 - p)
        context, weights = multi_head_attention(queries, keys_values, n_heads, blocked)
        return context * 0.0, weights
    if _use_kernels():
        return attention_kernel(queries, keys_values, n_heads, blocked, p)  # kernel: one node, raw arrays
    keep = None
    if p > 0:  # drawn before the softmax, as the kernel draws it: both paths drop the same weights
        batch, length = queries.shape[:2]
        key_length = length if keys_values is None else keys_values.shape[1]
        keep = keep_mask((batch, n_heads, length, key_length), p, queries.backend)
    context, weights = attention_with_keep_mask(queries, keys_values, n_heads, blocked, keep, p)
    return context, weights.detach()


def attention_with_keep_mask(queries, keys_values, n_heads, blocked, keep, p):
    """multi_head_attention with its dropout mask given (`keep`, or None for no dropout)."""
    if keys_values is None:
        q, k, v = split_heads(queries, 3, n_heads)
    else:
        (q,), (k, v) = split_heads(queries, 1, n_heads), split_heads(keys_values, 2, n_heads)
    weights = attention_weights(q, k, blocked)
    dropped = weights if keep is None else scale_by_keep_mask(weights, keep, p)
    return merge_heads(dropped @ v), weights


# -- embedding ------------------------------------------------------------------------------
class Embedding(Function):
    """Rows of `weight` picked by integer ids; the gradient adds back into those rows."""

    def forward(self, ids, weight, padding_idx):
        self.save_for_backward(ids)
        self.num_rows, self.padding_idx = weight.shape[0], padding_idx
        return weight[ids]

    def backward(self, grad):
        (ids,) = self.saved_tensors
        return None, EmbeddingBackward.apply(grad, ids, num_rows=self.num_rows, padding_idx=self.padding_idx)


class EmbeddingBackward(Function):
    def forward(self, grad, ids, num_rows, padding_idx):
        self.save_for_backward(ids)
        self.padding_idx = padding_idx
        result = self.xp.zeros((num_rows,) + grad.shape[ids.ndim:], dtype=grad.dtype)
        rows, values = ids.reshape(-1), grad.reshape((-1,) + grad.shape[ids.ndim:])
        self.backend.scatter_add_rows(result, rows, values, unwanted_row=padding_idx)
        if padding_idx is not None:
            result[padding_idx] = 0  # the padding row never learns
        return result

    def backward(self, grad):
        (ids,) = self.saved_tensors
        picked = Embedding.apply(ids, grad, padding_idx=None)
        if self.padding_idx is not None:
            picked = picked * (ids != self.padding_idx).unsqueeze(-1)
        return picked, None


def embedding(ids, weight, padding_idx=None):
    """Rows of `weight` picked by `ids`; ids outside [0, num_embeddings) raise IndexError on the CPU
    (on a GPU they are not checked)."""
    if ids.dtype.kind not in "iu":
        raise TypeError(f"embedding: ids must be an integer tensor, got {ids.dtype}")
    check_ids_in_range(ids, weight.shape[0], "embedding", "index")
    if padding_idx is not None and padding_idx < 0:
        padding_idx += weight.shape[0]
    return Embedding.apply(ids, weight, padding_idx=padding_idx)


# -- losses ---------------------------------------------------------------------------------
def _reduce(loss, reduction, op):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _classes_last(logits, target, op):
    """(N, C, d1, ...) logits -> (N, d1, ..., C), checking the target's shape (PyTorch's layout)."""
    if logits.ndim == 1:
        logits = logits.unsqueeze(0)
        target = target.reshape(1)
    elif logits.ndim > 2:
        logits = logits.movedim(1, -1)
    if tuple(target.shape) != tuple(logits.shape[:-1]):
        raise ValueError(f"{op}: target of shape {target.shape} does not match logits of shape "
                         f"{logits.shape} (expected target shape {logits.shape[:-1]})")
    if target.dtype.kind not in "iu":
        raise TypeError(f"{op}: target must hold integer class ids, got {target.dtype}")
    return logits, target


def _mean_over_kept(loss, keep):
    """Sum over the targets that were not ignored / their count, as PyTorch: NaN when every target is ignored,
    but a zero gradient then (not inf * 0 = NaN), so one all-padding batch cannot spoil the weights."""
    count = keep.sum().to(loss.dtype)
    no_target = count == 0
    return loss.sum() / count.masked_fill(no_target, 1.0) + where(no_target, float("nan"), 0.0).to(loss.dtype)


def _finish(loss, keep, reduction, unbatched, op):
    if reduction == "mean":
        return _mean_over_kept(loss, keep)
    if reduction == "none" and unbatched:
        return loss.squeeze(0)
    return _reduce(loss, reduction, op)


def nll_loss(log_probs, target, ignore_index=-100, reduction="mean"):
    unbatched = log_probs.ndim == 1
    log_probs, target = _classes_last(log_probs, target, "nll_loss")
    check_ids_in_range(target, log_probs.shape[-1], "nll_loss", "target", ignore_index)
    keep = target != ignore_index
    safe_target = where(keep, target, 0)
    picked = gather(log_probs, -1, safe_target.unsqueeze(-1)).squeeze(-1)
    return _finish(-picked * keep, keep, reduction, unbatched, "nll_loss")


def cross_entropy(logits, target, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    """Softmax cross-entropy from raw logits, as torch.nn.functional.cross_entropy.

    logits: (N, C) or (N, C, d1, ...) or (C,); target: class ids of shape (N, d1, ...).
    With label smoothing the target distribution is (1 - s) on the true class plus
    s / C on every class; targets equal to `ignore_index` add nothing, and the mean
    is taken over the others (NaN when every target is ignored, with a zero gradient).
    Other targets outside [0, C) raise IndexError on the CPU (on a GPU they are not checked).
    """
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    unbatched = logits.ndim == 1
    logits, target = _classes_last(logits, target, "cross_entropy")
    check_ids_in_range(target, logits.shape[-1], "cross_entropy", "target", ignore_index)
    if _use_kernels():  # kernel: every pass over the (N, C) logits per row block, one pass backward
        loss = CrossEntropyKernel.apply(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                          ignore_index=ignore_index, label_smoothing=label_smoothing,
                                          reduction=reduction)
        if reduction != "none":
            return loss
        return loss.squeeze(0) if unbatched else loss.reshape(target.shape)
    log_probs = log_softmax(logits, -1)
    keep = target != ignore_index
    picked = gather(log_probs, -1, where(keep, target, 0).unsqueeze(-1)).squeeze(-1)
    loss = -picked
    if label_smoothing > 0:  # (1 - s) * nll + s * the cross-entropy with the uniform distribution
        loss = (1 - label_smoothing) * loss - label_smoothing * log_probs.mean(-1)
    return _finish(loss * keep, keep, reduction, unbatched, "cross_entropy")


def mse_loss(input, target, reduction="mean"):
    if input.shape != target.shape:
        raise ValueError(f"mse_loss: input of shape {input.shape} and target of shape {target.shape} differ")
    diff = input - target
    return _reduce(diff * diff, reduction, "mse_loss")


__all__ = ["linear", "layer_norm", "dropout", "relu_dropout", "dropout_add_layer_norm", "embedding",
           "cross_entropy", "nll_loss", "mse_loss", "softmax", "log_softmax", "masked_softmax",
           "multi_head_attention", "scaled_dot_product_attention", "relu", "gelu", "sigmoid", "tanh"]
