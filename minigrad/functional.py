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
    softplus, binary_cross_entropy_with_logits   relu(z) + log1p(exp(-|z|)), log1p by Kahan's trick
    multi_head_attention_forward   torch's MultiheadAttention: linear projections, split heads,
                    scaled_dot_product_attention (or masked softmax when the weights are returned)

This is the code the docs teach. For these functions the fast path is chosen here and
nowhere else: unless reference mode is on (`minigrad.set_reference_mode(True)`,
MINIGRAD_REFERENCE=1), the lines marked "kernel:" hand the work to one fused node of
minigrad/kernels, which computes the same values and is tested against the code below (the
engine then picks that node's backward; optim.Adam picks its own kernel the same way).
Layers in `nn` and the Transformer only call these functions and never choose a path themselves.
"""
import math
import warnings

from .autograd import Function, is_reference_mode
from .kernels.attention import attention as attention_kernel
from .kernels.cross_entropy import CrossEntropy as CrossEntropyKernel
from .kernels.dropout import Dropout as DropoutKernel, ReluDropout as ReluDropoutKernel
from .kernels.layer_norm import LayerNorm as LayerNormKernel
from .kernels.linear import Linear as LinearKernel
from .kernels.residual_exit import DropoutAddLayerNorm as DropoutAddLayerNormKernel
from .tensor import Tensor
from .ops.broadcast import broadcast_shapes
from .ops.indexing import check_ids_in_range
from .ops.reduction import normalize_dims
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


# -- more of torch.nn.functional: activations, normalisation, padding, one-hot -----------------
def silu(input, inplace=False):
    """x * sigmoid(x) (torch.nn.functional.silu, also called swish). `inplace` is accepted for PyTorch
    compatibility; the result is always a new tensor."""
    return input * sigmoid(input)


def _log1p(u):
    """log(1 + u), accurate for tiny u as well (what log(1 + u) loses once 1 + u rounds), from ops that exist.

    Kahan's trick: with w = 1 + u rounded, log1p(u) = log(w) * u / (w - 1). The difference from log(w) only
    undoes the rounding of w, so it is added as a constant: the derivatives are those of log(w), 1 / w and so on,
    exact to rounding. Where w rounds to 1, log1p(u) = u to within u**2 / 2."""
    w = 1 + u
    rounded = w - 1
    unchanged = rounded == 0
    log_w = w.log()
    rounding = (log_w * (u / where(unchanged, 1.0, rounded) - 1)).detach()
    return where(unchanged, u, log_w + rounding)


def _softplus(z):
    """log(1 + exp(z)) without overflow: relu(z) + log1p(exp(-|z|)). The -|z| is written as where(z > 0, -z, z)
    so that at z = 0 the derivative is sigmoid(0) = 1/2 (relu's and abs's subgradients there would give 0)."""
    return relu(z) + _log1p(where(z > 0, -z, z).exp())


def softplus(input, beta=1.0, threshold=20.0):
    """log(1 + exp(beta * x)) / beta, and x itself where beta * x > threshold (torch.nn.functional.softplus)."""
    scaled = input * beta
    return where(scaled > threshold, input, _softplus(scaled) / beta)


def _vector_norm(x, p, axes):
    """The p-norm over `axes` (kept as size 1), as torch.linalg.vector_norm; at a zero vector the value is 0
    and the gradient 0 (not the 0 / 0 of sqrt's or pow's derivative there)."""
    if p == 0:
        return (x != 0).sum(axes, keepdim=True).to(x.dtype)
    if p in (math.inf, -math.inf):
        return x.abs().amax(axes, keepdim=True) if p > 0 else x.abs().amin(axes, keepdim=True)
    total = (x * x if p == 2 else x.abs() ** p).sum(axes, keepdim=True)
    zero = total == 0
    safe = where(zero, 1.0, total)
    return where(zero, 0.0, safe.sqrt() if p == 2 else safe ** (1.0 / p))


def normalize(input, p=2.0, dim=1, eps=1e-12, out=None):
    """x / max(||x||_p, eps) along `dim` (an int or a tuple of ints), as torch.nn.functional.normalize."""
    if out is not None:
        raise NotImplementedError("normalize: out= is not supported; use the returned tensor")
    axes = normalize_dims(dim, input.ndim, "normalize")
    return input / _vector_norm(input, p, axes).clip(min=eps)


def rms_norm(input, normalized_shape, weight=None, eps=None):
    """x / sqrt(mean(x**2) + eps) * weight over the last dims (torch.nn.functional.rms_norm); eps=None means
    the machine epsilon of the input's dtype, torch.finfo(input.dtype).eps, as in torch."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if tuple(input.shape[input.ndim - len(shape):]) != shape:
        raise ValueError(f"rms_norm: input of shape {input.shape} does not end in normalized_shape {shape} "
                         f"(expected an input of shape (*, {', '.join(map(str, shape))}))")
    if weight is not None and tuple(weight.shape) != shape:
        raise ValueError(f"rms_norm: weight of shape {weight.shape} does not match normalized_shape {shape}")
    if eps is None:
        eps = float(input.xp.finfo(input.dtype).eps)
    axes = tuple(range(input.ndim - len(shape), input.ndim))
    y = input * ((input * input).mean(axes, keepdim=True) + eps).rsqrt()
    return y * weight if weight is not None else y


def pad(input, pad, mode="constant", value=None):
    """torch.nn.functional.pad in constant mode: `pad` holds (before, after) pairs starting from the LAST dim,
    (last_before, last_after, second_last_before, ...); a negative amount crops that many elements instead."""
    if mode != "constant":
        raise NotImplementedError(f"pad: mode {mode!r} is not supported (only 'constant')")
    amounts = tuple(int(amount) for amount in pad)
    if len(amounts) % 2:
        raise ValueError(f"pad: padding {amounts} has odd length {len(amounts)}; it must hold (before, after) pairs")
    if len(amounts) // 2 > input.ndim:
        raise ValueError(f"pad: padding {amounts} has {len(amounts) // 2} pairs for an input of shape {input.shape} "
                         f"({input.ndim} dims): at most one pair per dim")
    value = 0 if value is None else value
    result = input
    for pair in range(len(amounts) // 2):
        axis = input.ndim - 1 - pair
        before, after = amounts[2 * pair], amounts[2 * pair + 1]
        size = result.shape[axis]
        if size + min(before, 0) + min(after, 0) < 0:
            raise ValueError(f"pad: padding ({before}, {after}) of dim {axis} crops more than its size {size} "
                             f"(input of shape {input.shape})")
        lead = (slice(None),) * axis
        if before < 0 or after < 0:
            result = result[lead + (slice(max(-before, 0), size - max(-after, 0)),)]
        pieces = [result]
        for at, amount in ((0, before), (2, after)):
            if amount > 0:
                filler_shape = result.shape[:axis] + (amount,) + result.shape[axis + 1:]
                filler = Tensor._make(input.xp.full(filler_shape, value, dtype=input.dtype), input.backend)
                pieces.insert(at, filler)
        if len(pieces) > 1:
            result = cat(pieces, axis)
    return result


def one_hot(tensor, num_classes=-1):
    """(*) integer class ids -> (*, num_classes) int64 with a 1 at each id (torch.nn.functional.one_hot).

    num_classes=-1 takes the largest id + 1, which reads that id on the host (a device sync on a GPU, as in
    torch). Ids outside [0, num_classes) raise IndexError on the CPU (on a GPU they are not checked)."""
    if tensor.dtype.kind not in "iu":
        raise TypeError(f"one_hot: the class ids must be an integer tensor, got {tensor.dtype}")
    if num_classes == -1:
        if tensor.numel() == 0:
            raise ValueError(f"one_hot: cannot infer num_classes from an empty tensor of shape {tensor.shape}; "
                             f"pass num_classes")
        num_classes = int(tensor.data.max()) + 1  # the one host read this function makes, as torch's
    elif num_classes < 0:
        raise ValueError(f"one_hot: num_classes must be -1 (infer) or at least 0, got {num_classes}")
    check_ids_in_range(tensor, num_classes, "one_hot", "class id")
    classes = Tensor._make(tensor.xp.arange(num_classes), tensor.backend)
    return (tensor.unsqueeze(-1) == classes).long()


# -- more losses -----------------------------------------------------------------------------
def _legacy_reduction(size_average, reduce, reduction):
    """torch's deprecated size_average / reduce flags: when either is given it decides the reduction, as in
    torch (reduce=False: 'none'; else size_average=False: 'sum'; else 'mean')."""
    if size_average is None and reduce is None:
        return reduction
    warnings.warn("size_average and reduce are deprecated, as in torch: use reduction= instead", stacklevel=3)
    if reduce is not None and not reduce:
        return "none"
    return "sum" if size_average is not None and not size_average else "mean"


def _check_broadcast(op, shape, **others):
    """Refuse operands that do not broadcast to `shape`, naming the function and every shape."""
    for name, other in others.items():
        if other is None:
            continue
        try:
            fits = broadcast_shapes(tuple(other.shape), tuple(shape)) == tuple(shape)
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(f"{op}: {name} of shape {tuple(other.shape)} does not broadcast to the input's "
                             f"shape {tuple(shape)}")


def _xlogx(x):
    """x * log(x), with 0 where x == 0 (torch.xlogy(x, x)); NaN for negative x."""
    zero = x == 0
    return where(zero, 0.0, x * where(zero, 1.0, x).log())


def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    """Pointwise KL divergence target * (log(target) - input), `input` holding log-probabilities, as
    torch.nn.functional.kl_div; `target` holds probabilities, or log-probabilities with log_target=True.

    "batchmean" divides the sum by the batch size input.shape[0] (the KL divergence of each sample,
    averaged); "mean" divides by the number of elements, as in torch. A target of 0 adds 0."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if reduction not in ("mean", "batchmean", "sum", "none"):
        raise ValueError(f"kl_div: reduction must be 'mean', 'batchmean', 'sum' or 'none', got {reduction!r}")
    try:
        broadcast_shapes(tuple(input.shape), tuple(target.shape))
    except ValueError:
        raise ValueError(f"kl_div: input of shape {input.shape} and target of shape {target.shape} do not "
                         f"broadcast together") from None
    if log_target:
        loss = target.exp() * (target - input)
    else:
        loss = _xlogx(target) - target * input
    if reduction == "batchmean":
        return loss.sum() / input.shape[0] if input.ndim else loss.sum()
    return _reduce(loss, reduction, "kl_div")


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None, reduction="mean",
                                     pos_weight=None):
    """-[pos_weight * t * log sigmoid(x) + (1 - t) * log(1 - sigmoid(x))] * weight from raw logits x, as
    torch.nn.functional.binary_cross_entropy_with_logits, written (1 - t) x + (1 + (pos_weight - 1) t) softplus(-x)
    so that no logit overflows. `weight` broadcasts to the input, `pos_weight` (one per class) along its last dim."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"binary_cross_entropy_with_logits: target of shape {target.shape} must have the input's "
                         f"shape {input.shape}")
    _check_broadcast("binary_cross_entropy_with_logits", input.shape, weight=weight, pos_weight=pos_weight)
    log_sigmoid_term = _softplus(-input)  # -log sigmoid(x)
    if pos_weight is not None:
        log_sigmoid_term = ((pos_weight - 1) * target + 1) * log_sigmoid_term
    loss = (1 - target) * input + log_sigmoid_term
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction, "binary_cross_entropy_with_logits")


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """Mean absolute error |input - target| (torch.nn.functional.l1_loss). With `weight` (the input's shape),
    each error is weighted and "mean" divides by the sum of the weights, as in torch."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if input.shape != target.shape:
        raise ValueError(f"l1_loss: input of shape {input.shape} and target of shape {target.shape} differ")
    loss = (input - target).abs()
    if weight is None:
        return _reduce(loss, reduction, "l1_loss")
    if tuple(weight.shape) != tuple(input.shape):
        raise ValueError(f"l1_loss: weight of shape {weight.shape} must have the input's shape {input.shape}")
    loss = loss * weight
    if reduction == "mean":
        return loss.sum() / weight.sum()
    return _reduce(loss, reduction, "l1_loss")


# -- torch.nn.MultiheadAttention's function ----------------------------------------------------
_MHA = "multi_head_attention_forward"


def _check_mha_shapes(query, key, value, key_padding_mask, attn_mask, num_heads):
    """torch's shape rules for multi_head_attention_forward; True for batched (3-D) inputs, False for 2-D."""
    if query.ndim not in (2, 3):
        raise ValueError(f"{_MHA}: query of shape {query.shape} must be 2-D (L, E) or 3-D (L, N, E)")
    batched = query.ndim == 3
    if key.ndim != query.ndim or value.ndim != query.ndim:
        raise ValueError(f"{_MHA}: query of shape {query.shape} needs key and value of {query.ndim} dims too, got "
                         f"key {key.shape} and value {value.shape}")
    if key_padding_mask is not None and key_padding_mask.ndim != query.ndim - 1:
        raise ValueError(f"{_MHA}: key_padding_mask of shape {key_padding_mask.shape} must be "
                         f"{'(N, S)' if batched else '(S,)'} for a query of shape {query.shape}")
    if attn_mask is not None:
        length, source_length = query.shape[0], key.shape[0]
        batch = query.shape[1] if batched else 1
        allowed = [(length, source_length), (batch * num_heads, length, source_length)]
        if tuple(attn_mask.shape) not in allowed:
            raise ValueError(f"{_MHA}: attn_mask of shape {attn_mask.shape} must be (L, S) = {allowed[0]} or "
                             f"(N * num_heads, L, S) = {allowed[1]} for query {query.shape} and key {key.shape}")
    return batched


def _mask_parts(mask, name):
    """A torch-style mask -> (blocked, bias): a bool mask is True where attention is NOT allowed, a float one
    is added to the scores."""
    if mask is None:
        return None, None
    if mask.dtype.kind == "b":
        return mask, None
    if mask.dtype.kind == "f":
        return None, mask
    raise TypeError(f"{_MHA}: {name} must be a bool or floating-point tensor, got {mask.dtype}")


def _rows(tensor, start, stop):
    return None if tensor is None else tensor[start:stop]


def _project_heads(x, weight, bias, num_heads, what):
    """(N, S, E_in) -> (N, H, S, E / H) through `weight` (E, E_in)."""
    if weight.ndim != 2 or weight.shape[-1] != x.shape[-1]:
        raise ValueError(f"{_MHA}: {what} projection weight of shape {weight.shape} does not fit an input of shape "
                         f"{x.shape} (expected (embed_dim, {x.shape[-1]}))")
    return split_heads(linear(x, weight, bias), 1, num_heads)[0]


def multi_head_attention_forward(query, key, value, embed_dim_to_check, num_heads, in_proj_weight, in_proj_bias,
                                 bias_k, bias_v, add_zero_attn, dropout_p, out_proj_weight, out_proj_bias,
                                 training=True, key_padding_mask=None, need_weights=True, attn_mask=None,
                                 use_separate_proj_weight=False, q_proj_weight=None, k_proj_weight=None,
                                 v_proj_weight=None, static_k=None, static_v=None, average_attn_weights=True,
                                 is_causal=False):
    """torch.nn.functional.multi_head_attention_forward, what torch.nn.MultiheadAttention computes.

    query (L, N, E), key (S, N, E_k), value (S, N, E_v), sequence first (or unbatched (L, E), (S, E_k),
    (S, E_v)). The masks mean what they mean in torch's MultiheadAttention: a bool `key_padding_mask` (N, S)
    is True at padding keys to IGNORE and a bool `attn_mask` (L, S) or (N * num_heads, L, S) is True where
    attention is NOT allowed (the opposite of scaled_dot_product_attention's bool mask); float masks are
    added to the scores. `is_causal` is only a hint that attn_mask is the causal mask, which must be given;
    without a key_padding_mask and with need_weights=False the causal mask itself is used instead, as in torch.

    Returns (attn_output (L, N, E), attn_weights or None): the weights (after dropout, as torch returns
    them) are (N, L, S) averaged over the heads, or (N, num_heads, L, S) with average_attn_weights=False.
    A query whose every key is masked out gets zero weights and output (torch's NaN, from an all -inf row).
    """
    self_attention, shared_key_value = query is key and key is value, key is value
    batched = _check_mha_shapes(query, key, value, key_padding_mask, attn_mask, num_heads)
    if not batched:
        query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
        key_padding_mask = None if key_padding_mask is None else key_padding_mask.unsqueeze(0)
    length, batch, embed_dim = query.shape
    head_dim = embed_dim // num_heads
    if embed_dim != embed_dim_to_check or head_dim * num_heads != embed_dim:
        raise ValueError(f"{_MHA}: query of shape {query.shape} has embedding dim {embed_dim}; expected "
                         f"embed_dim_to_check={embed_dim_to_check}, divisible by num_heads={num_heads}")
    if key.shape[:2] != value.shape[:2] or (not use_separate_proj_weight and key.shape != value.shape):
        raise ValueError(f"{_MHA}: key of shape {key.shape} and value of shape {value.shape} do not match (same "
                         f"length and batch{'' if use_separate_proj_weight else ', and same width'})")
    if is_causal and attn_mask is None:
        raise ValueError(f"{_MHA}: is_causal is a hint that attn_mask is the causal mask; pass that attn_mask too")
    if is_causal and key_padding_mask is None and not need_weights:
        attn_mask = None  # sdpa's own causal mask, as torch
    else:
        is_causal = False
    blocked, bias = _mask_parts(attn_mask, "attn_mask")
    if attn_mask is not None and attn_mask.ndim == 3:  # (N * H, L, S): one mask per sequence and head
        blocked, bias = (None if m is None else m.reshape(batch, num_heads, length, -1) for m in (blocked, bias))

    # projections, heads split: (N, H, L or S, E / H)
    q_in = query.transpose(0, 1)
    k_in = q_in if self_attention else key.transpose(0, 1)
    v_in = k_in if shared_key_value else value.transpose(0, 1)
    separate = (q_proj_weight, k_proj_weight, v_proj_weight) if use_separate_proj_weight else None
    if separate is not None and any(weight is None for weight in separate):
        raise ValueError(f"{_MHA}: use_separate_proj_weight=True needs q_proj_weight, k_proj_weight and v_proj_weight")
    if separate is None and (in_proj_weight is None or tuple(in_proj_weight.shape) != (3 * embed_dim, embed_dim)):
        raise ValueError(f"{_MHA}: in_proj_weight must have shape {(3 * embed_dim, embed_dim)}, got "
                         f"{None if in_proj_weight is None else in_proj_weight.shape}")
    if separate is None and self_attention:  # one GEMM for q, k and v
        q, k, v = split_heads(linear(q_in, in_proj_weight, in_proj_bias), 3, num_heads)
    elif separate is None and shared_key_value:  # one for q, one for k and v
        q = _project_heads(q_in, in_proj_weight[:embed_dim], _rows(in_proj_bias, 0, embed_dim), num_heads, "q")
        k, v = split_heads(linear(k_in, in_proj_weight[embed_dim:], _rows(in_proj_bias, embed_dim, None)), 2,
                           num_heads)
    else:  # one each
        separate = in_proj_weight.chunk(3) if separate is None else separate
        biases = [_rows(in_proj_bias, i * embed_dim, (i + 1) * embed_dim) for i in range(3)]
        q, k, v = (_project_heads(x, weight, b, num_heads, what) for x, weight, b, what in
                   zip((q_in, k_in, v_in), separate, biases, "qkv"))
    for name, static in (("static_k", static_k), ("static_v", static_v)):
        if static is not None and (static.ndim != 3 or static.shape[0] != batch * num_heads
                                   or static.shape[2] != head_dim):
            raise ValueError(f"{_MHA}: {name} of shape {static.shape} must be (N * num_heads, S, head_dim) = "
                             f"({batch * num_heads}, S, {head_dim})")
    k = k if static_k is None else static_k.reshape(batch, num_heads, -1, head_dim)
    v = v if static_v is None else static_v.reshape(batch, num_heads, -1, head_dim)
    if k.shape[2] != v.shape[2]:
        raise ValueError(f"{_MHA}: {k.shape[2]} keys but {v.shape[2]} values (from static_k or static_v)")
    if key_padding_mask is not None and tuple(key_padding_mask.shape) != (batch, k.shape[2]):
        raise ValueError(f"{_MHA}: key_padding_mask of shape {key_padding_mask.shape} does not fit {batch} "
                         f"sequences of {k.shape[2]} keys (expected {(batch, k.shape[2])})")

    # extra keys and values every query may attend to: learned biases, then zeros
    appended = 0
    if (bias_k is None) != (bias_v is None):
        raise ValueError(f"{_MHA}: pass both bias_k and bias_v or neither")
    if bias_k is not None:
        if static_k is not None or static_v is not None:
            raise ValueError(f"{_MHA}: bias_k and bias_v cannot be added to static_k and static_v")
        k, v = (cat([part, extra.reshape(1, num_heads, 1, head_dim).expand(batch, num_heads, 1, head_dim)], 2)
                for part, extra in ((k, bias_k), (v, bias_v)))
        appended += 1
    if add_zero_attn:
        k, v = (cat([part, Tensor._make(part.xp.zeros(part.shape[:2] + (1, head_dim), dtype=part.dtype),
                                        part.backend)], 2) for part in (k, v))
        appended += 1
    padding_blocked, padding_bias = _mask_parts(key_padding_mask, "key_padding_mask")
    masks = [blocked, bias, padding_blocked, padding_bias]
    if appended:  # the extra keys are never masked
        masks = [None if m is None else pad(m, (0, appended)) for m in masks]
    blocked, bias, padding_blocked, padding_bias = masks
    if key_padding_mask is not None:  # (N, S) -> (N, 1, 1, S), merged with attn_mask
        if padding_blocked is not None:
            padding_blocked = padding_blocked.reshape(batch, 1, 1, -1)
            blocked = padding_blocked if blocked is None else blocked | padding_blocked
        else:
            padding_bias = padding_bias.reshape(batch, 1, 1, -1)
            bias = padding_bias if bias is None else bias + padding_bias

    p = dropout_p if training else 0.0
    _check_probability(p, _MHA)
    weights = None
    if need_weights:  # computed here, since scaled_dot_product_attention does not return the weights
        weights = dropout(attention_weights(q, k, blocked, bias=bias), p, training=p > 0)
        context = weights @ v
    else:
        if bias is not None:
            mask = bias if blocked is None else bias.masked_fill(blocked, -math.inf)
        else:
            mask = None if blocked is None else ~blocked  # sdpa's bool mask is True where allowed
        context = scaled_dot_product_attention(q, k, v, mask, p, is_causal)
    output = linear(merge_heads(context), out_proj_weight, out_proj_bias).transpose(0, 1)
    if weights is not None and average_attn_weights:
        weights = weights.mean(1)
    if not batched:
        output, weights = output.squeeze(1), None if weights is None else weights.squeeze(0)
    return output, weights


__all__ = ["linear", "layer_norm", "dropout", "relu_dropout", "dropout_add_layer_norm", "embedding",
           "cross_entropy", "nll_loss", "mse_loss", "softmax", "log_softmax", "masked_softmax",
           "multi_head_attention", "scaled_dot_product_attention", "relu", "gelu", "sigmoid", "tanh",
           "silu", "softplus", "normalize", "rms_norm", "pad", "one_hot", "kl_div", "binary_cross_entropy_with_logits",
           "l1_loss", "multi_head_attention_forward"]
