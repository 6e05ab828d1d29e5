"""Anomaly mode: find the op whose backward first produced a NaN or an infinity, and where you called it.

    with minigrad.autograd.detect_anomaly():
        loss = model(x).sum()
        loss.backward()
    # RuntimeError: Function 'Sqrt' returned inf values in its 0th output.
    #
    # Traceback of the forward call that created it (most recent call last):
    #   File "train.py", line 12, in step
    #     y = x.sqrt()

While anomaly mode is on, every node recorded keeps the stack of the forward call that made it
(its frames inside minigrad itself left off), and the backward pass checks the gradients each
node's backward returns: the first one holding a NaN or an infinity stops the pass with an error
that names the op and shows that forward stack. When a backward raises an error of its own, a
warning shows the same stack before the error goes on, as in PyTorch.

Differences from torch.autograd.detect_anomaly: PyTorch checks for NaN only (an infinity passes);
minigrad checks both, since an infinite gradient is the usual step before a NaN. With
check_nan=False only the stacks are kept.

It is slow (a stack per op, a device-to-host check per node), so it is for debugging only. Off, it
costs one flag check per recorded node and one per backward pass.
"""
import contextlib
import os
import traceback
import warnings

from ..tensor import Tensor

_enabled = False
_check_nan = True
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep  # minigrad/


def is_anomaly_enabled():
    return _enabled


def is_anomaly_check_nan_enabled():
    return _check_nan


class set_detect_anomaly:
    """Turn anomaly mode on or off now; as a context manager, the previous mode comes back on exit."""

    def __init__(self, mode, check_nan=True):
        global _enabled, _check_nan
        self.previous = (_enabled, _check_nan)
        _enabled, _check_nan = bool(mode), bool(check_nan)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        global _enabled, _check_nan
        _enabled, _check_nan = self.previous
        return False


class detect_anomaly(contextlib.ContextDecorator):
    """Anomaly mode inside a `with` block (or a decorated function)."""

    def __init__(self, check_nan=True):
        self.check_nan = check_nan
        self.modes = []

    def __enter__(self):
        self.modes.append(set_detect_anomaly(True, self.check_nan))
        return self

    def __exit__(self, *exc):
        return self.modes.pop().__exit__(*exc)


def forward_stack():
    """The current stack, for a node being recorded: up to the last frame outside minigrad's own files."""
    stack = traceback.extract_stack()
    end = len(stack)
    while end > 1 and stack[end - 1].filename.startswith(_PACKAGE):
        end -= 1
    return stack[:end]


def _forward_trace(node):
    stack = node._forward_stack
    if stack is None:
        return ("\n\nNo forward trace: this node was recorded while anomaly mode was off "
                "(run the forward inside detect_anomaly() too).")
    return ("\n\nTraceback of the forward call that created it (most recent call last):\n"
            + "".join(traceback.format_list(stack)).rstrip("\n"))


def checked_backward(node_backward, node, grad, use_arrays):
    """node_backward(node, grad, use_arrays), with the checks of anomaly mode."""
    name = type(node).__name__
    try:
        grads = node_backward(node, grad, use_arrays)
    except Exception:
        warnings.warn(f"Error detected in {name}." + _forward_trace(node), stacklevel=3)
        raise
    if _check_nan:
        for index, g in enumerate(grads):
            if isinstance(g, Tensor):
                xp = g._backend.xp
                if bool(xp.isnan(g.data).any()):
                    kind = "nan"
                elif not bool(xp.isfinite(g.data).all()):
                    kind = "inf"
                else:
                    continue
                raise RuntimeError(f"Function '{name}' returned {kind} values in its {index}th output."
                                   + _forward_trace(node))
    return grads
