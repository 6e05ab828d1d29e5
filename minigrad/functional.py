"""Neural-network functions (what `torch.nn.functional` holds), with hand-written backward
where fusing saves memory or passes: linear, layer_norm, dropout, embedding; and the
losses built from them: cross_entropy, nll_loss, mse_loss.

Layers in `nn` are thin wrappers that own the parameters and call these.
"""
from . import backend as _backend_module
from .autograd import Function, is_grad_enabled
from .tensor import Tensor
from .ops import gather, log_softmax, mean, relu, gelu, sigmoid, softmax, sum, tanh, where  # noqa: F401


# -- linear ---------------------------------------------------------------------------------
class Linear(Function):
    """y = x W^T + b, with x flattened to 2-D so that each product is a single GEMM."""

    def forward(self, x, weight, bias):
        self.save_for_backward(x, weight)
        x2 = x.reshape(-1, x.shape[-1])
        y = x2 @ weight.T
        if bias is not None:
            y += bias
        return y.reshape(x.shape[:-1] + (weight.shape[0],))

    def backward(self, grad):
        x, weight = self.saved_tensors
        if not is_grad_enabled():
            return self._backward_arrays(grad, x, weight)
        need_x, need_w, need_b = self.needs_input_grad
        g2 = grad.reshape(-1, grad.shape[-1])
        grad_x = (g2 @ weight).reshape(x.shape) if need_x else None
        grad_w = g2.mT @ x.reshape(-1, x.shape[-1]) if need_w else None
        grad_b = g2.sum(0) if need_b else None
        return grad_x, grad_w, grad_b

    def _backward_arrays(self, grad, x, weight):
        """The same products on raw arrays: without create_graph nothing needs recording, and each
        reshape and transpose above would be a graph node of its own."""
        need_x, need_w, need_b = self.needs_input_grad
        g2 = grad.data.reshape(-1, grad.shape[-1])
        wrap = lambda array: Tensor._make(array, self.backend)  # noqa: E731
        grad_x = wrap((g2 @ weight.data).reshape(x.shape)) if need_x else None
        grad_w = wrap(g2.T @ x.data.reshape(-1, x.shape[-1])) if need_w else None
        grad_b = wrap(g2.sum(0)) if need_b else None
        return grad_x, grad_w, grad_b


def linear(x, weight, bias=None):
    if x.shape[-1] != weight.shape[-1]:
        raise ValueError(f"linear: input of shape {x.shape} does not fit weight of shape {weight.shape} "
                         f"(expected last dim {weight.shape[-1]})")
    return Linear.apply(x, weight, bias)


# -- layer norm -----------------------------------------------------------------------------
class LayerNorm(Function):
    """(x - mean) / sqrt(var + eps) * weight + bias over the last dims, biased variance.

    Backward uses the saved normalised input when only first derivatives are
    wanted; under create_graph it recomputes it from x with tensor ops, so the
    backward pass is itself differentiable.
    """

    def _mean(self, a):
        """Mean over the normalised dims, kept. Over one (usually short) last dim, NumPy's reduction
        goes row by row; a matrix-vector product with a column of 1/D does the same sums in one GEMV."""
        if len(self.axes) > 1:
            return a.mean(axis=self.axes, keepdims=True)
        return a @ self.xp.full((a.shape[-1], 1), 1.0 / a.shape[-1], dtype=a.dtype)

    def forward(self, x, weight, bias, axes, eps):
        self.axes, self.eps = axes, eps
        xp = self.xp
        centered = x - self._mean(x)
        variance = self._mean(centered * centered)
        rstd = 1 / xp.sqrt(variance + eps)
        normalized = centered * rstd
        self.save_for_backward(x, weight, normalized, rstd)
        y = normalized * weight if weight is not None else normalized.copy()
        if bias is not None:
            y += bias
        return y

    def _normalized(self, x, normalized, rstd):
        if not is_grad_enabled():
            return normalized, rstd
        centered = x - x.mean(self.axes, keepdim=True)
        rstd = ((centered * centered).mean(self.axes, keepdim=True) + self.eps) ** -0.5
        return centered * rstd, rstd

    def backward(self, grad):
        x, weight, normalized, rstd = self.saved_tensors
        need_x, need_w, need_b = self.needs_input_grad
        if not is_grad_enabled():
            return self._backward_arrays(grad, weight, normalized, rstd)
        normalized, rstd = self._normalized(x, normalized, rstd)
        lead = tuple(range(x.ndim - len(self.axes)))
        grad_w = (grad * normalized).sum(lead) if need_w else None
        grad_b = grad.sum(lead) if need_b else None
        grad_x = None
        if need_x:
            g = grad * weight if weight is not None else grad
            grad_x = rstd * (g - g.mean(self.axes, keepdim=True)
                             - normalized * (g * normalized).mean(self.axes, keepdim=True))
        return grad_x, grad_w, grad_b

    def _backward_arrays(self, grad, weight, normalized, rstd):
        """The same formulas as `backward`, on raw arrays and in place where possible: without
        create_graph nothing needs recording, and the dozen small Tensor ops cost more than the math."""
        need_x, need_w, need_b = self.needs_input_grad
        g, normalized, rstd = grad.data, normalized.data, rstd.data
        lead = tuple(range(g.ndim - len(self.axes)))
        wrap = lambda array: Tensor._make(array, self.backend)  # noqa: E731
        grad_w = wrap((g * normalized).sum(lead)) if need_w else None
        grad_b = wrap(g.sum(lead)) if need_b else None
        grad_x = None
        if need_x:
            g = g * weight.data if weight is not None else g.copy()
            projection = self._mean(g * normalized)
            g -= self._mean(g)
            g -= normalized * projection
            g *= rstd
            grad_x = wrap(g)
        return grad_x, grad_w, grad_b


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if tuple(x.shape[x.ndim - len(normalized_shape):]) != normalized_shape:
        raise ValueError(f"layer_norm: input of shape {x.shape} does not end in normalized_shape {normalized_shape}")
    axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    return LayerNorm.apply(x, weight, bias, axes=axes, eps=eps)


# -- dropout --------------------------------------------------------------------------------
class Dropout(Function):
    """Zero each element with probability p and scale the rest by 1/(1-p) (inverted dropout)."""

    def keep_mask(self, x, p):
        """Which elements survive (bool: a quarter of a float mask's memory); subclasses may narrow it."""
        return self.backend.keep_mask(x.shape, p)

    def forward(self, x, p):
        keep = self.keep_mask(x, p)
        self.scale = 1.0 / (1.0 - p)
        self.save_for_backward(keep)
        y = x * keep
        y *= self.scale
        return y

    def backward(self, grad):
        (keep,) = self.saved_tensors
        if not is_grad_enabled():
            g = grad.data * keep.data
            g *= self.scale
            return Tensor._make(g, self.backend)
        return grad * keep * self.scale


def dropout(x, p=0.5, training=True):
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    return Dropout.apply(x, p=p)


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
        self.backend.scatter_add_rows(result, ids.reshape(-1), grad.reshape((-1,) + grad.shape[ids.ndim:]))
        if padding_idx is not None:
            result[padding_idx] = 0  # the padding row never learns
        return result

    def backward(self, grad):
        (ids,) = self.saved_tensors
        picked = Embedding.apply(ids, grad, padding_idx=None)
        if self.padding_idx is not None:
            picked = picked * (ids != self.padding_idx).unsqueeze(-1)
        return picked, None


def _check_ids_in_range(ids, size, op, what, ignore_index=None):
    """Refuse ids outside [0, size): NumPy would silently read -1 as the last row.

    Checked on the CPU only, where it is one cheap pass over the ids. On a GPU the check
    would make the host wait for the device at every step, so there out-of-range ids are
    NOT caught (negative ones wrap around, as on any NumPy-like array).
    """
    if ids._backend.xp is not _backend_module.host_numpy or ids.data.size == 0:
        return
    values = ids.data
    if values.min() >= 0 and values.max() < size:
        return  # the usual case: two cheap reductions
    bad = (values < 0) | (values >= size)
    if ignore_index is not None:
        bad &= values != ignore_index
    if bad.any():
        raise IndexError(f"{op}: {what} {int(values[bad][0])} is out of bounds (expected 0 <= {what} < {size})")


def embedding(ids, weight, padding_idx=None):
    """Rows of `weight` picked by `ids`; ids outside [0, num_embeddings) raise IndexError on the CPU
    (on a GPU they are not checked)."""
    if ids.dtype.kind not in "iu":
        raise TypeError(f"embedding: ids must be an integer tensor, got {ids.dtype}")
    _check_ids_in_range(ids, weight.shape[0], "embedding", "index")
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
    _check_ids_in_range(target, log_probs.shape[-1], "nll_loss", "target", ignore_index)
    keep = target != ignore_index
    safe_target = where(keep, target, 0)
    picked = gather(log_probs, -1, safe_target.unsqueeze(-1)).squeeze(-1)
    return _finish(-picked * keep, keep, reduction, unbatched, "nll_loss")


class CrossEntropy(Function):
    """Label-smoothed softmax cross-entropy of (N, C) logits and (N,) class ids, in one node.

    Composed from log_softmax, gather, mean and masks it takes a dozen passes over the
    (N, C) logits, forward and backward; fused, the gradient is simply

        d loss_i / d logits_i = w_i * (softmax(logits_i) - target_distribution_i)

    with target_distribution_i = (1 - s) one_hot(t_i) + s / C and w_i the row's weight
    in the reduction (0 for ignored targets; 1 / kept count for "mean").
    """

    def forward(self, logits, target, ignore_index, label_smoothing, reduction):
        xp = self.xp
        self.label_smoothing, self.reduction = label_smoothing, reduction
        rows = xp.arange(logits.shape[0])
        row_max = logits.max(axis=-1, keepdims=True)
        row_max = xp.where(xp.isfinite(row_max), row_max, 0)
        probs = logits - row_max  # shifted logits; turned into the softmax in place below (one (N, C) array)
        keep = target != ignore_index
        safe_target = xp.where(keep, target, 0)
        picked = probs[rows, safe_target]
        shifted_mean = probs.mean(axis=-1) if label_smoothing > 0 else None
        xp.exp(probs, out=probs)
        total = probs.sum(axis=-1, keepdims=True)
        log_total = xp.log(total)[:, 0]
        loss = log_total - picked  # -log_softmax at the target
        if label_smoothing > 0:
            mean_log_prob = shifted_mean - log_total
            loss = (1 - label_smoothing) * loss - label_smoothing * mean_log_prob
        loss = xp.where(keep, loss, 0).astype(logits.dtype, copy=False)
        kept = keep.sum().astype(logits.dtype)
        self.weight = keep.astype(logits.dtype)  # each row's weight in the reduction, before grad's
        if reduction == "mean":
            self.weight /= xp.maximum(kept, 1)
            result = xp.where(kept > 0, loss.sum() / xp.maximum(kept, 1), xp.nan).astype(logits.dtype)
        elif reduction == "sum":
            result = loss.sum()
        else:
            result = loss
        probs /= total  # the softmax, kept for backward
        self.save_for_backward(logits, probs, safe_target)
        return result

    def backward(self, grad):
        logits, probs, safe_target = self.saved_tensors
        if not is_grad_enabled():
            return Tensor._make(self._gradient_array(probs.data, safe_target.data, grad.data), self.backend), None
        # create_graph: the softmax must depend on the logits in the graph, so build it from tensor ops.
        probs = softmax(logits, -1)
        xp, s = self.xp, self.label_smoothing
        target_distribution = xp.full(logits.shape, s / logits.shape[-1], dtype=logits.dtype)
        target_distribution[xp.arange(logits.shape[0]), safe_target.data] += 1 - s
        target_distribution = Tensor._make(target_distribution, self.backend)  # a constant
        weight = grad * Tensor._make(self.weight, self.backend)  # (N,): grad is 0-d for "mean" and "sum"
        return (probs - target_distribution) * weight.unsqueeze(-1), None

    def _gradient_array(self, probs, target, grad):
        """w_i * (p_i - q_i) with q_i = (1 - s) one_hot(t_i) + s / C: two passes, no (N, C) target array."""
        weight = self.weight * grad  # (N,); grad is 0-d for "mean" and "sum", (N,) for "none"
        result = probs * weight[:, None]
        s, classes = self.label_smoothing, probs.shape[-1]
        if s > 0:
            result -= (weight * (s / classes))[:, None]
        result[self.xp.arange(probs.shape[0]), target] -= weight * (1 - s)
        return result


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
    _check_ids_in_range(target, logits.shape[-1], "cross_entropy", "target", ignore_index)
    loss = CrossEntropy.apply(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=ignore_index,
                              label_smoothing=label_smoothing, reduction=reduction)
    if reduction != "none":
        return loss
    return loss.squeeze(0) if unbatched else loss.reshape(target.shape)


def mse_loss(input, target, reduction="mean"):
    if input.shape != target.shape:
        raise ValueError(f"mse_loss: input of shape {input.shape} and target of shape {target.shape} differ")
    diff = input - target
    return _reduce(diff * diff, reduction, "mse_loss")


__all__ = ["linear", "layer_norm", "dropout", "embedding", "cross_entropy", "nll_loss", "mse_loss", "softmax",
           "log_softmax", "relu", "gelu", "sigmoid", "tanh"]
