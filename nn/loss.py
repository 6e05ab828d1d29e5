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
