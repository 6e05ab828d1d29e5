"""Kernel for F.cross_entropy: label-smoothed softmax cross-entropy of (N, C) logits in one node.

Replaces: the reference's log_softmax, gather, mean over classes, masks and the reduction
(a dozen passes over the (N, C) logits, forward and backward; at base size the logits are the
largest array of a step). Saves: every forward pass over a block of rows is made while it is in
the cache, on every core, and backward is a single pass:

    d loss_i / d logits_i = w_i * (softmax(logits_i) - q_i)

with q_i = (1 - s) one_hot(t_i) + s / C the smoothed target and w_i the row's weight in the
reduction (0 for an ignored target, 1 / kept count for "mean").
"""
from .. import functional as F
from ..autograd import Function
from .through_reference import gradient_through_reference


class CrossEntropy(Function):
    def forward(self, logits, target, ignore_index, label_smoothing, reduction):
        xp = self.xp
        self.ignore_index, self.label_smoothing, self.reduction = ignore_index, label_smoothing, reduction
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
        self.save_for_backward(logits, target, probs, safe_target)
        return result

    def backward_arrays(self, grad):
        """w_i * (p_i - q_i), without building the (N, C) target distribution."""
        _, _, probs, target = self.saved_arrays
        xp = self.xp
        weight = (self.weight * grad)[:, None]  # grad is 0-d for "mean" and "sum", (N,) for "none"
        s, classes = self.label_smoothing, probs.shape[-1]
        result = xp.empty_like(probs)

        def rows(start, stop):
            xp.subtract(probs[start:stop], s / classes, out=result[start:stop])
            result[start:stop] *= weight[start:stop]

        self.backend.parallel_for(rows, probs.shape[0], classes, passes=2)
        result[xp.arange(probs.shape[0]), target] -= weight[:, 0] * (1 - s)
        return result, None

    def backward(self, grad):
        logits, target, _, _ = self.saved_tensors
        return gradient_through_reference(
            self, grad, (logits, target),
            lambda logits, target: F.cross_entropy(logits, target, self.ignore_index, self.label_smoothing,
                                                   self.reduction))
