"""Training helpers that act on a model's parameters (PyTorch keeps them in torch.nn.utils)."""
from minigrad.optim.clip_grad import clip_grad_norm_, clip_grad_value_  # noqa: F401

__all__ = ["clip_grad_norm_", "clip_grad_value_"]
