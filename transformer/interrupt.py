"""Ctrl-C, `kill` and a closed terminal during training: finish the step, save, exit.

Stopping in the middle of a step would leave the model and the optimizer half updated, so the
training loop asks StopOnInterrupt after each step whether to stop, and saves a consistent
checkpoint before it does. SIGTERM (`kill`, a batch scheduler's stop, `docker stop`) and SIGHUP (the
terminal or ssh session went away) would otherwise end the process on the spot and lose every step
since the last save; they are handled like Ctrl-C (SIGINT). The exit code is the shell's
convention for "ended by signal N", 128 + N: 130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP.

While a checkpoint is being written (`with interrupt.deferred():`) further signals only ask to stop,
so a second Ctrl-C cannot cut a save short; minigrad.save also writes to a temporary file and
renames it, so even a SIGKILL leaves the previous checkpoint whole.
"""
from __future__ import annotations

import signal
from contextlib import contextmanager

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class StopOnInterrupt:
    """While active, the first stop signal (SIGINT, SIGTERM, SIGHUP) only asks the training loop to stop
    after the current step, so the checkpoint it then saves is consistent; a second one stops at once
    (KeyboardInterrupt), except inside deferred()."""

    def __init__(self):
        self.requested = False
        self.signum = None             # the first stop signal received
        self._previous = {}
        self._deferring = False

    @property
    def exit_code(self) -> int:
        """128 + the signal's number, as a shell reports a process ended by that signal."""
        return 128 + (self.signum or signal.SIGINT)

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum or signal.SIGINT).name

    def _handle(self, signum, frame):
        if self.requested and not self._deferring:
            raise KeyboardInterrupt
        self.requested = True
        self.signum = self.signum or signum

    @contextmanager
    def deferred(self):
        """Within this block, signals only ask to stop: for work that must not be cut short (a save)."""
        deferring, self._deferring = self._deferring, True
        try:
            yield
        finally:
            self._deferring = deferring

    def __enter__(self):
        try:
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        except ValueError:        # not the main thread: signals keep their default behaviour
            pass
        return self

    def __exit__(self, *exc_info):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}
        return False
