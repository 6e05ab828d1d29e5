"""The one kind of error a command-line user gets as a single line instead of a traceback.

The package's pieces that read flags, files and checkpoints (corpus, checkpoint, run_settings)
raise it; train.py prints it as `error: ...` and exits with code 2.
"""


class UsageError(Exception):
    """A problem the user can fix (bad flag, missing checkpoint, no GPU): one line, exit code 2."""
