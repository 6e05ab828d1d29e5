"""Losses as modules: they hold the options; minigrad.functional does the math."""
import minigrad.functional as F

from .module import Module


class CrossEntropyLoss(Module):
    """Softmax cross-entropy from raw logits, as torch.nn.CrossEntropyLoss.

    input (N, C) or (N, C, d1, ...), target class ids (N,) or (N, d1, ...).
    label_smoothing s mixes the one-hot target with the uniform distribution over all
    C classes: (1 - s) on the true class plus s / C everywhere. Targets equal to
    ignore_index (e.g. padding) contribute nothing, and "mean" divides by the number
    of the others (so a batch with every target ignored gives nan, as in PyTorch).
    """

    def __init__(self, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        super().__init__()
        self.ignore_index, self.reduction, self.label_smoothing = ignore_index, reduction, label_smoothing

    def forward(self, input, target):
        return F.cross_entropy(input, target, ignore_index=self.ignore_index,
                               label_smoothing=self.label_smoothing, reduction=self.reduction)

    def extra_repr(self):
        return (f"ignore_index={self.ignore_index}, reduction={self.reduction!r}, "
                f"label_smoothing={self.label_smoothing}")


class NLLLoss(Module):
    """Negative log-likelihood of log-probabilities (what CrossEntropyLoss is after a log_softmax)."""

    def __init__(self, ignore_index=-100, reduction="mean"):
        super().__init__()
        self.ignore_index, self.reduction = ignore_index, reduction

    def forward(self, input, target):
        return F.nll_loss(input, target, ignore_index=self.ignore_index, reduction=self.reduction)


class MSELoss(Module):
    """Mean squared error (input - target)^2, reduced by mean, sum or none."""

    def __init__(self, reduction="mean"):
        super().__init__()
        self.reduction = reduction

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)

    def extra_repr(self):
        return f"reduction={self.reduction!r}"


class L1Loss(Module):
    """Mean absolute error |input - target|, reduced by mean, sum or none (torch.nn.L1Loss)."""

    def __init__(self, size_average=None, reduce=None, reduction="mean"):
        super().__init__()
        self.reduction = F._legacy_reduction(size_average, reduce, reduction)

    def forward(self, input, target):
        return F.l1_loss(input, target, reduction=self.reduction)

    def extra_repr(self):
        return f"reduction={self.reduction!r}"


class KLDivLoss(Module):
    """KL divergence from log-probabilities `input` to `target` (torch.nn.KLDivLoss); reduction="batchmean"
    gives the mathematical KL divergence averaged over the batch."""

    def __init__(self, size_average=None, reduce=None, reduction="mean", log_target=False):
        super().__init__()
        self.reduction, self.log_target = F._legacy_reduction(size_average, reduce, reduction), log_target

    def forward(self, input, target):
        return F.kl_div(input, target, reduction=self.reduction, log_target=self.log_target)

    def extra_repr(self):
        return f"reduction={self.reduction!r}, log_target={self.log_target}"


class BCEWithLogitsLoss(Module):
    """Binary cross-entropy from raw logits (torch.nn.BCEWithLogitsLoss); `weight` and `pos_weight` are
    buffers, as in torch (saved in the state_dict and moved by to())."""

    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean", pos_weight=None):
        super().__init__()
        self.reduction = F._legacy_reduction(size_average, reduce, reduction)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input, target):
        return F.binary_cross_entropy_with_logits(input, target, self.weight, reduction=self.reduction,
                                                  pos_weight=self.pos_weight)

    def extra_repr(self):
        return f"reduction={self.reduction!r}"
