"""The switches that decide what the engine does: record a graph or not (grad mode, inference
mode), and which backward it runs (the kernels' array backward, or the reference's Tensor-op backward).

Both are module globals read on every op: `Function.apply` records a node only when grad
mode is on and an input requires grad; the backward pass reads the reference mode once.
"""
import contextlib
import os

from .. import tensor as _tensor

# -- grad mode ----------------------------------------------------------------------------
_grad_enabled = True


def is_grad_enabled():
    return _grad_enabled


class set_grad_enabled(contextlib.ContextDecorator):
    """Context manager / decorator that turns graph recording on or off."""

    def __init__(self, mode):
        self.mode = bool(mode)
        self.previous = []

    def __enter__(self):
        global _grad_enabled
        self.previous.append(_grad_enabled)
        _grad_enabled = self.mode

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self.previous.pop()
        return False


class _ModeDecorator(set_grad_enabled):
    """A grad mode usable as `with mode():`, `@mode()` and, as in torch 2, plain `@mode`."""

    _mode = True

    def __new__(cls, function=None):
        if function is None:
            return super().__new__(cls)
        return cls()(function)  # `@no_grad` without parentheses: Python passes the function itself

    def __init__(self, function=None):
        super().__init__(self._mode)


class no_grad(_ModeDecorator):
    """Do not record ops (inference, optimizer updates). Usable as `with` or as a decorator."""

    _mode = False


class enable_grad(_ModeDecorator):
    """Record ops again inside a `no_grad` block."""

    _mode = True


class inference_mode(contextlib.ContextDecorator):
    """no_grad for inference, where tensors made inside are inference tensors (`t.is_inference()`).

    Usable as `with`, `@inference_mode()` and `@inference_mode`; `inference_mode(False)` turns it
    off inside (and grad mode on, as in torch). What minigrad emulates of PyTorch's inference
    tensors is what costs nothing: they share one version counter that counts nothing, so, with
    torch's errors, they cannot be saved for backward by an op recorded later, nor be written in
    place, nor be made to require grad outside inference mode; views and detach() of them are
    inference tensors too.

    Differences from torch: it is no faster than no_grad (torch skips version counting and view
    tracking for inference tensors; minigrad's cost the same either way); a view made inside
    inference mode of a normal tensor is a normal tensor (torch refuses in-place writes to it
    outside); and enable_grad() inside records ops as usual.
    """

    def __new__(cls, mode=True):
        if callable(mode):  # `@inference_mode` without parentheses: Python passes the function itself
            return cls()(mode)
        return super().__new__(cls)

    def __init__(self, mode=True):
        self.mode = bool(mode)
        self.previous = []

    def __enter__(self):
        global _grad_enabled
        self.previous.append((_grad_enabled, _tensor._is_inference_mode()))
        _grad_enabled = not self.mode
        _tensor._set_inference_mode(self.mode)

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled, inference = self.previous.pop()
        _tensor._set_inference_mode(inference)
        return False


def is_inference_mode_enabled():
    return _tensor._is_inference_mode()


# -- which path: the reference or the kernels ----------------------------------------------
_reference_mode = os.environ.get("MINIGRAD_REFERENCE", "0") not in ("", "0")


def is_reference_mode():
    """True when only the reference path runs: composed primitive ops, Tensor-op backwards."""
    return _reference_mode


class set_reference_mode:
    """Run only the reference path (True) or let the engine use the kernels (False).

    Takes effect at once, and as a context manager puts the previous mode back on exit:

        minigrad.set_reference_mode(True)          # from here on
        with minigrad.set_reference_mode(True):    # inside the block only
    """

    def __init__(self, mode):
        global _reference_mode
        self.previous, _reference_mode = _reference_mode, bool(mode)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        global _reference_mode
        _reference_mode = self.previous
        return False
