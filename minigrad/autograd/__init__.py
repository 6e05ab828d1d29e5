"""Reverse-mode autograd: graph nodes, the backward pass, and the modes that steer them.

    grad_mode.py     grad mode (no_grad, enable_grad) and reference mode: what is recorded, which backward runs
    function.py      Function: an op's forward and backward; each instance is a node of the graph
    torch_style.py   Functions written the PyTorch way (staticmethods with a ctx, several outputs)
    engine.py        the backward pass: backward() and grad()
    hooks.py         Tensor.register_hook, the handles of every hook, nn.Module's backward hooks

Everything is importable from here (`from minigrad.autograd import Function, grad, no_grad`)
and the most used names also from `minigrad` itself.
"""
from .engine import backward, grad
from .function import Function
from .grad_mode import enable_grad, is_grad_enabled, is_reference_mode, no_grad, set_grad_enabled, set_reference_mode

__all__ = ["Function", "backward", "enable_grad", "grad", "is_grad_enabled", "is_reference_mode", "no_grad",
           "set_grad_enabled", "set_reference_mode"]
