"""Ctrl-C during training: finish the step, save, exit.

Stopping in the middle of a step would leave the model and the optimizer half updated, so the
training loop asks StopOnInterrupt after each step whether to stop, and saves a consistent
checkpoint before it does.
"""
from __future__ import annotations

import signal


class StopOnInterrupt:
    """While active, the first Ctrl-C (SIGINT) only asks the training loop to stop after the current
    step, so the checkpoint it then saves is consistent; a second Ctrl-C stops at once."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:        # not the main thread: Ctrl-C keeps its default behaviour
            self._previous = None
        return self

    def __exit__(self, *exc_info):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False
