"""Optimizers, learning-rate schedules and gradient clipping (the names of torch.optim)."""
from . import lr_scheduler  # noqa: F401
from .adam import Adam, AdamW
from .clip_grad import clip_grad_norm_, clip_grad_value_
from .optimizer import Optimizer
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "lr_scheduler", "clip_grad_norm_", "clip_grad_value_"]
