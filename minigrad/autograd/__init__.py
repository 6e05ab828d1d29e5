"""Reverse-mode autograd: graph nodes, the backward pass, and the modes and tools around them.

    grad_mode.py      grad mode (no_grad, enable_grad), inference_mode, and reference mode:
                      what is recorded, which backward runs
    function.py       Function: an op's forward and backward; each instance is a node of the graph
    torch_style.py    Functions written the PyTorch way (staticmethods with a ctx, several outputs)
    engine.py         the backward pass: backward() and grad()
    hooks.py          Tensor.register_hook, the handles of every hook, nn.Module's backward hooks
    graph.py          saved_tensors_hooks: watch (and change) what the graph keeps for backward
    anomaly_mode.py   detect_anomaly: which op's backward first made a NaN or inf, and where it was called
    functional.py     jacobian, hessian, vjp, jvp, vhp, hvp of whole functions

Everything is importable from here (`from minigrad.autograd import Function, grad, no_grad`)
and the most used names also from `minigrad` itself.
"""
from . import functional, graph  # noqa: F401  (minigrad.autograd.functional.jacobian, .graph.saved_tensors_hooks)
from .anomaly_mode import detect_anomaly, is_anomaly_check_nan_enabled, is_anomaly_enabled, set_detect_anomaly
from .engine import backward, grad, partial_grad
from .function import Function
from .grad_mode import (enable_grad, inference_mode, is_grad_enabled, is_inference_mode_enabled, is_reference_mode,
                        no_grad, set_grad_enabled, set_reference_mode)

__all__ = ["Function", "backward", "detect_anomaly", "enable_grad", "functional", "grad", "graph", "inference_mode",
           "is_anomaly_check_nan_enabled", "is_anomaly_enabled", "is_grad_enabled", "is_inference_mode_enabled",
           "is_reference_mode", "no_grad", "partial_grad", "set_detect_anomaly", "set_grad_enabled", "set_reference_mode"]
