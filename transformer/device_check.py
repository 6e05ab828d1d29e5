"""Is the device a user asked for usable? If not, say why in one line, before any work starts.

Without this, `--device cuda` on a machine without CuPy or a GPU would fail deep inside the first
tensor's creation with a traceback that does not say what to install or which flag to change.
"""
from __future__ import annotations

import importlib.util

import minigrad

from .errors import UsageError


def check_device(device: str) -> str:
    """'cpu' or a usable 'cuda[:N]', else a UsageError that says why in one line."""
    if device == "cpu":
        return device
    if not device.startswith("cuda"):
        raise UsageError(f"--device {device}: unknown device; use cpu or cuda")
    if not minigrad.cuda.is_available():
        if importlib.util.find_spec("cupy") is None:
            why = "CuPy is not installed (pip install \"minigrad[gpu]\" on a machine with an NVIDIA GPU)"
        else:
            why = "CuPy is installed but finds no usable NVIDIA GPU"
        raise UsageError(f"--device {device}: {why}; use --device cpu")
    return device
