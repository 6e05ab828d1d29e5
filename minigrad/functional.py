"""Neural-network functions (what `torch.nn.functional` holds), with hand-written backward
where fusing saves memory or passes: linear, layer_norm, dropout, embedding; and the
losses built from them: cross_entropy, nll_loss, mse_loss.

Layers in `nn` are thin wrappers that own the parameters and call these.
"""
import math

from .autograd import Function, is_grad_enabled
from .tensor import Tensor
from .ops.indexing import check_ids_in_range
from .ops import gather, log_softmax, mean, relu, gelu, sigmoid, softmax, sum, tanh, where  # noqa: F401


# -- linear ---------------------------------------------------------------------------------
class Linear(Function):
    """y = x W^T + b, with x flattened to 2-D so that each product is a single GEMM."""

    def forward(self, x, weight, bias):
        self.save_for_backward(x, weight)
        x2 = x.reshape(-1, x.shape[-1])
        y = x2 @ weight.T
        if bias is not None:
            def add_bias(start, stop):
                rows = y[start:stop]
                rows += bias  # in place on the view (`y[start:stop] += bias` would also write it back)

            self.backend.parallel_for(add_bias, y.shape[0], y.shape[1])
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
        grad_b = wrap(_column_sums(self.backend, g2)) if need_b else None
        return grad_x, grad_w, grad_b


def _column_sums(backend, matrix):
    """matrix.sum(0) as a vector-matrix product: BLAS runs it on every core, NumPy's sum on one."""
    return backend.constant_column(matrix.shape[0], 1.0, matrix.dtype).reshape(-1) @ matrix


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

    def forward(self, x, weight, bias, axes, eps, fill_rows=None):
        """`fill_rows(start, stop)`, if given, first writes those rows of x (flattened to one row per
        normalised slice) in the same block: how DropoutAddLayerNorm forms its sum in the cache."""
        self.axes, self.eps = axes, eps
        xp = self.xp
        features = math.prod(x.shape[x.ndim - len(axes):])
        rows_in = x.reshape(-1, features)  # the normalised dims flattened: one row per normalised slice
        scale = weight.reshape(features) if weight is not None else None
        shift = bias.reshape(features) if bias is not None else None
        y, normalized = xp.empty_like(rows_in), xp.empty_like(rows_in)
        rstd = xp.empty((rows_in.shape[0], 1), dtype=rows_in.dtype)

        def rows(start, stop):
            if fill_rows is not None:
                fill_rows(start, stop)
            x_rows, n, r, out = rows_in[start:stop], normalized[start:stop], rstd[start:stop], y[start:stop]
            xp.subtract(x_rows, _row_means(self.backend, x_rows), out=n)            # centred
            xp.matmul(n * n, _mean_column(self.backend, features, n.dtype), out=r)  # variance
            r += eps
            xp.sqrt(r, out=r)
            xp.divide(1, r, out=r)                                                  # 1 / sqrt(var + eps)
            n *= r
            if scale is not None:
                xp.multiply(n, scale, out=out)
            else:
                out[...] = n
            if shift is not None:
                out += shift

        self.backend.parallel_for(rows, rows_in.shape[0], features, passes=6 if fill_rows is None else 9)
        kept = x.shape[:x.ndim - len(axes)] + (1,) * len(axes)
        self.save_for_backward(x, weight, normalized.reshape(x.shape), rstd.reshape(kept))
        return y.reshape(x.shape)

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

    def _backward_arrays(self, grad, weight, normalized, rstd, needs=None, use_rows=None):
        """The same formulas as `backward`, on raw arrays, row block by row block, in place where
        possible: without create_graph nothing needs recording, and a dozen small Tensor ops
        would cost more than the math. `needs`: which of (x, weight, bias) want a gradient;
        `use_rows(start, stop, grad_x_rows)`, if given, runs on each block of x's gradient while it
        is in the cache."""
        need_x, need_w, need_b = needs or self.needs_input_grad
        xp = self.xp
        features = math.prod(normalized.shape[normalized.ndim - len(self.axes):])
        g2, n2 = grad.data.reshape(-1, features), normalized.data.reshape(-1, features)
        r2 = rstd.data.reshape(-1, 1)
        scale = weight.data.reshape(features) if weight is not None else None
        g_times_n = xp.empty_like(g2) if need_w else None
        grad_x = xp.empty_like(g2) if need_x else None

        def rows(start, stop):
            g, n = g2[start:stop], n2[start:stop]
            if need_w:
                xp.multiply(g, n, out=g_times_n[start:stop])
            if need_x:
                gx = grad_x[start:stop]
                if scale is not None:
                    xp.multiply(g, scale, out=gx)
                else:
                    gx[...] = g
                projection = _row_means(self.backend, gx * n)
                gx -= _row_means(self.backend, gx)
                gx -= n * projection
                gx *= r2[start:stop]
                if use_rows is not None:
                    use_rows(start, stop, gx)

        self.backend.parallel_for(rows, g2.shape[0], features, passes=8 if use_rows is None else 10)
        affine_shape = normalized.shape[normalized.ndim - len(self.axes):]
        wrap = lambda array, shape: Tensor._make(array.reshape(shape), self.backend)  # noqa: E731
        return (wrap(grad_x, grad.shape) if need_x else None,
                wrap(_column_sums(self.backend, g_times_n), affine_shape) if need_w else None,
                wrap(_column_sums(self.backend, g2), affine_shape) if need_b else None)


def _row_means(backend, rows):
    """Mean of each row, kept as a column. NumPy reduces short rows one at a time; a product
    with a column of 1/D (one GEMV) does the same sums in one call."""
    return rows @ _mean_column(backend, rows.shape[-1], rows.dtype)


def _mean_column(backend, length, dtype):
    """A (length, 1) column of 1 / length, made once per device (rows @ it = the row means)."""
    return backend.constant_column(length, 1.0 / length, dtype)


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if tuple(x.shape[x.ndim - len(normalized_shape):]) != normalized_shape:
        raise ValueError(f"layer_norm: input of shape {x.shape} does not end in normalized_shape {normalized_shape}")
    axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    return LayerNorm.apply(x, weight, bias, axes=axes, eps=eps)


# -- the exit of a post-LN sub-layer ---------------------------------------------------------
class DropoutAddLayerNorm(LayerNorm):
    """layer_norm(residual + dropout(x)) as one node: how every sub-layer of a post-LN Transformer ends.

    Composed it is three nodes (dropout, add, layer_norm) and two full-size intermediate arrays;
    here the sum is formed block by block and normalised while it is in the cache, and backward
    is LayerNorm's plus one masked copy for x (the residual's gradient is the sum's). Under
    create_graph the composed ops are differentiated instead, with the same mask, so second
    derivatives stay exact.
    """

    def forward(self, x, residual, weight, bias, p, axes, eps):
        xp = self.xp
        keep = self.backend.keep_mask(x.shape, p) if p > 0 else None  # p = 0: eval, or no dropout
        self.dropout_scale = 1.0 / (1.0 - p)
        summed = xp.empty_like(x)
        features = math.prod(x.shape[x.ndim - len(axes):])
        x_rows, residual_rows, summed_rows = (a.reshape(-1, features) for a in (x, residual, summed))
        keep_rows = keep.reshape(-1, features) if keep is not None else None

        def form_sum(start, stop):  # LayerNorm's kernel calls this on each block before normalising it
            out = summed_rows[start:stop]
            if keep_rows is None:
                xp.add(x_rows[start:stop], residual_rows[start:stop], out=out)
                return
            xp.multiply(x_rows[start:stop], keep_rows[start:stop], out=out)
            out *= self.dropout_scale
            out += residual_rows[start:stop]

        y = super().forward(summed, weight, bias, axes, eps, fill_rows=form_sum)  # saves (summed, weight, ..)
        self.save_for_backward(*self._to_save, keep, x, residual, bias)
        return y

    def backward(self, grad):
        _, weight, normalized, rstd, keep, x, residual, bias = self.saved_tensors
        if is_grad_enabled():
            return self._backward_composed(grad, keep, x, residual, weight, bias)
        need_x, need_residual, need_w, need_b = self.needs_input_grad
        grad_x = keep_rows = None
        if need_x and keep is not None:  # x's gradient is the sum's, masked and scaled: made block by block
            grad_x = self.xp.empty(x.shape, dtype=grad.dtype)
            features = math.prod(x.shape[x.ndim - len(self.axes):])
            keep_rows, grad_x_rows = keep.data.reshape(-1, features), grad_x.reshape(-1, features)

        def mask_rows(start, stop, grad_summed_rows):
            out = grad_x_rows[start:stop]
            self.xp.multiply(grad_summed_rows, keep_rows[start:stop], out=out)
            out *= self.dropout_scale

        grad_summed, grad_w, grad_b = self._backward_arrays(  # LayerNorm's input is the sum
            grad, weight, normalized, rstd, needs=(True, need_w, need_b),
            use_rows=mask_rows if keep_rows is not None else None)
        if need_x:
            grad_x = grad_summed if keep is None else Tensor._make(grad_x, self.backend)
        return grad_x, (grad_summed if need_residual else None), grad_w, grad_b

    def _backward_composed(self, grad, keep, x, residual, weight, bias):
        """The gradient through the composed, recorded ops: differentiable again."""
        from .autograd import grad as autograd_grad

        inputs = [t for t in (x, residual, weight, bias) if t is not None and t.requires_grad]
        shape = x.shape[x.ndim - len(self.axes):]
        dropped = x if keep is None else x * keep * self.dropout_scale
        output = layer_norm(residual + dropped, shape, weight, bias, self.eps)
        grads = dict(zip(inputs, autograd_grad(output, inputs, grad, create_graph=True)))
        return tuple(grads.get(t) if t is not None else None for t in (x, residual, weight, bias))


def dropout_add_layer_norm(x, residual, p, normalized_shape, weight=None, bias=None, eps=1e-5, training=True):
    """layer_norm(residual + dropout(x, p, training), normalized_shape, weight, bias, eps), as one node
    when x and the residual have one shape and dtype (else composed; also for p = 1, all dropped)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if (training and p == 1.0) or x.shape != residual.shape or x.dtype != residual.dtype:
        return layer_norm(residual + dropout(x, p, training), normalized_shape, weight, bias, eps)
    normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if tuple(x.shape[x.ndim - len(normalized_shape):]) != normalized_shape:
        raise ValueError(f"layer_norm: input of shape {x.shape} does not end in normalized_shape {normalized_shape}")
    axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    return DropoutAddLayerNorm.apply(x, residual, weight, bias, p=p if training else 0.0, axes=axes, eps=eps)


# -- dropout --------------------------------------------------------------------------------
class Dropout(Function):
    """Zero each element with probability p and scale the rest by 1/(1-p) (inverted dropout).

    The mask of survivors is bool (a quarter of a float mask's memory). A subclass that sets
    `drops_non_positive` also drops x <= 0 through the same mask: dropout(relu(x)) in one node.
    """

    drops_non_positive = False

    def forward(self, x, p):
        keep = self.backend.keep_mask(x.shape, p)
        self.scale = 1.0 / (1.0 - p)
        self.save_for_backward(keep)  # narrowed in place below when drops_non_positive: still the mask saved
        return _masked_scaled(self.backend, x, keep, self.scale, narrow_to_positive=self.drops_non_positive)

    def backward(self, grad):
        (keep,) = self.saved_tensors
        if not is_grad_enabled():
            return Tensor._make(_masked_scaled(self.backend, grad.data, keep.data, self.scale), self.backend)
        return grad * keep * self.scale


def _masked_scaled(backend, values, keep, scale, narrow_to_positive=False):
    """values * keep * scale in one pass per block, on every core (dropout's forward and backward).

    With `narrow_to_positive`, each block of the mask first drops the values <= 0 (keep &= values > 0,
    in place): relu's mask and dropout's, formed in the same pass."""
    xp = backend.xp
    result = xp.empty(values.shape, dtype=values.dtype)
    flat_values, flat_keep, flat_result = values.reshape(-1), keep.reshape(-1), result.reshape(-1)

    def block(start, stop):
        out, kept, block_values = flat_result[start:stop], flat_keep[start:stop], flat_values[start:stop]
        if narrow_to_positive:
            kept &= block_values > 0
        xp.multiply(block_values, kept, out=out)
        out *= scale

    backend.parallel_for(block, flat_values.size, 1, passes=3 if narrow_to_positive else 1)
    return result


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
        keep = target != ignore_index
        safe_target = xp.where(keep, target, 0)
        probs = xp.empty_like(logits)  # the softmax, kept for backward
        loss = xp.empty(logits.shape[0], dtype=logits.dtype)

        def rows(start, stop):  # every pass over a block of rows while it sits in the cache
            block, p = logits[start:stop], probs[start:stop]
            row_max = block.max(axis=-1, keepdims=True)
            row_max = xp.where(xp.isfinite(row_max), row_max, 0)
            xp.subtract(block, row_max, out=p)  # shifted logits, turned into the softmax in place
            picked = p[xp.arange(stop - start), safe_target[start:stop]]
            shifted_mean = p.mean(axis=-1) if label_smoothing > 0 else None
            xp.exp(p, out=p)
            total = p.sum(axis=-1, keepdims=True)
            log_total = xp.log(total)[:, 0]
            row_loss = log_total - picked  # -log_softmax at the target
            if label_smoothing > 0:
                row_loss = (1 - label_smoothing) * row_loss - label_smoothing * (shifted_mean - log_total)
            loss[start:stop] = row_loss
            p /= total

        self.backend.parallel_for(rows, logits.shape[0], logits.shape[1], passes=8)
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
        """w_i * (p_i - q_i) with q_i = (1 - s) one_hot(t_i) + s / C: no (N, C) target array is built."""
        xp = self.xp
        weight = (self.weight * grad)[:, None]  # grad is 0-d for "mean" and "sum", (N,) for "none"
        s, classes = self.label_smoothing, probs.shape[-1]
        result = xp.empty_like(probs)

        def rows(start, stop):
            xp.subtract(probs[start:stop], s / classes, out=result[start:stop])
            result[start:stop] *= weight[start:stop]

        self.backend.parallel_for(rows, probs.shape[0], classes, passes=2)
        result[xp.arange(probs.shape[0]), target] -= weight[:, 0] * (1 - s)
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
    check_ids_in_range(target, logits.shape[-1], "cross_entropy", "target", ignore_index)
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
