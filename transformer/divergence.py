"""Divergence: a step whose loss or gradient is not finite must not touch the model, and a run that
keeps producing them stops, keeping its last good checkpoint.

Without this, a run with too high a learning rate (--lr 1e12) filled the weights with NaN, kept
"training" at NaN, and saved the NaN weights over the good checkpoint. Now:

- train.py's step asks DivergenceGuard.allows_update(loss, gradient norm) between backward() and
  optimizer.step(). A non-finite value skips the update: the weights, the optimizer's moments and
  the schedule stay as they were, and the step is not counted. One bad batch is survived.
- MAX_NONFINITE_STEPS (3) skipped steps in a row raise Diverged: the run stops with exit code 3.
  Nothing is saved then, so the checkpoint on disk is the last one written by a healthy run.
- check_finite(...) comes before every save: a model (or optimizer state) holding a NaN or an
  infinity is never written; the run stops with Diverged instead.

The check costs one host read per step: the loss and the gradient norm (clip_grad_norm_ returns it
as a 0-d tensor on the device) are added on the device and their sum read back once, finite exactly
when both are. On the CPU that read is free; on a GPU it waits for the step's backward to finish
(the logging alone reads the loss only every --log-every steps), which is the price of deciding the
update before it is made. The save-time check reads one flag per tensor, while saving copies every
tensor to the host anyway.
"""
from __future__ import annotations

import math

import minigrad

MAX_NONFINITE_STEPS = 3       # skipped steps in a row that stop a run


class Diverged(Exception):
    """The run stopped because its loss, gradients or weights are no longer finite."""


class DivergenceGuard:
    """Counts the non-finite steps in a row; `report` gets a one-line note for each skipped step."""

    def __init__(self, report=print, limit: int = MAX_NONFINITE_STEPS):
        self.report, self.limit = report, limit
        self.in_a_row = 0

    def allows_update(self, step: int, loss, grad_norm) -> bool:
        """Whether the update after `step` updates may be made; raises Diverged at the limit."""
        health = float((loss.detach() + grad_norm).item())      # the one host read of the check
        if math.isfinite(health):
            self.in_a_row = 0
            return True
        self.in_a_row += 1
        what = f"loss {float(loss.item()):.4g}, gradient norm {float(grad_norm.item()):.4g}"
        if self.in_a_row >= self.limit:
            raise Diverged(f"training diverged: after step {step}, {self.in_a_row} batches in a row gave a loss or "
                           f"gradient that is not finite (the last: {what}), and none of them updated the model")
        self.report(f"after step {step}: {what}: not finite, update skipped "
                    f"({self.in_a_row} in a row; {self.limit} in a row stop the run)")
        return False


def nonfinite_tensor(**states) -> str | None:
    """The name of the first tensor (or float) in the nested dicts/lists `states` that holds a NaN or
    an infinity, e.g. "model['encoder.layers.0.linear1.weight']"; None when all are finite."""
    pending = [(name, value) for name, value in states.items()]
    while pending:
        name, value = pending.pop(0)
        if isinstance(value, dict):
            pending[:0] = [(f"{name}[{key!r}]", item) for key, item in value.items()]
        elif isinstance(value, (list, tuple)):
            pending[:0] = [(f"{name}[{index}]", item) for index, item in enumerate(value)]
        elif isinstance(value, minigrad.Tensor):
            if not bool(value.detach().isfinite().all().item()):
                return name
        elif isinstance(value, float) and not math.isfinite(value):
            return name
    return None


def check_finite(step: int, **states):
    """Raise Diverged when a tensor of `states` (say model=..., optimizer=... state dicts) is not finite."""
    bad = nonfinite_tensor(**states)
    if bad:
        raise Diverged(f"training diverged: {bad} is not finite after step {step}")


def divergence_advice(checkpoint, saved_step: int | None, settings: dict) -> str:
    """What the user has left after Diverged, and what to try."""
    kept = (f"the last checkpoint, {checkpoint} (step {saved_step}), is kept" if saved_step is not None
            else "no checkpoint had been saved yet")
    rate = f"--lr {settings['lr']:g}" if settings["lr"] is not None else "the paper's rate"
    clip = "" if settings["clip"] else " or with --clip 1"
    return f"nothing was saved; {kept}. Start a new run with a smaller --lr (this one had {rate}){clip}"
