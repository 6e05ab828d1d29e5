"""A run directory belongs to one run, and one process writes into it at a time.

Without this, `python train.py` run twice wrote the second run over the first, a resumed copy of a
run directory wrote into the original, and two runs on one --out interleaved their checkpoints and
metrics. claim_run_directory() is what train.py does before it writes anything:

- It takes the directory's lock: `.lock`, a file holding the pid of the run that holds it, locked
  with fcntl.flock. The kernel drops a flock when its process ends, however it ends (SIGKILL, a
  crash, the OOM killer), so a dead run's lock is simply free: no guessing from a pid whether its
  process still lives (pids are reused), and no window between "stale?" and "take it over". A
  flock belongs to one open file, so two claims in one process also exclude each other, which POSIX
  record locks (fcntl.lockf) would not do. The file is never deleted (deleting a locked file lets two
  processes lock two different files of one name); a run that ends clears its pid, so a pid found
  in a free lock was left by a process that was killed, and is said so.
- It refuses a new run where a checkpoint already is, unless that checkpoint is the one being
  resumed or --overwrite says to replace it.
- It removes temporary files that a save killed half way left next to the checkpoint
  (minigrad.save writes `.last.ckpt.<random>.tmp`, then renames it), safe because no one else
  writes here while the lock is held.

Then RunDirectory.begin() makes the metrics log fit the run that starts: a new run starts an empty
one; a resumed run keeps only the records up to its step, so metrics.jsonl never holds a step twice.
Locking needs fcntl (Linux, macOS); where there is none, runs are not locked.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from .checkpoint import BEST_NAME, CHECKPOINT_NAME
from .errors import UsageError
from .run_log import METRICS_NAME

try:
    import fcntl
except ImportError:            # Windows: no flock; runs are not locked there
    fcntl = None

LOCK_NAME = ".lock"
PICTURES = ("curves.png", "attention.png")     # drawn by run_pictures at the end of a run


class DirectoryLock:
    """An exclusive, non-blocking lock on `directory`, held by this process until release()."""

    def __init__(self, directory: Path):
        self.path = Path(directory) / LOCK_NAME
        self._file = None
        self.stale_pid = None          # the pid a killed run left in the lock we took over

    def acquire(self):
        try:
            file = os.fdopen(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644), "r+", encoding="utf-8")
        except OSError as error:
            raise UsageError(f"{self.path.parent}: cannot write there ({error.strerror or error})") from None
        if fcntl is not None:
            try:
                fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _read_pid(file)
                file.close()
                who = f"pid {holder}" if holder else "another process"
                raise UsageError(f"{self.path.parent} is in use by another run ({who}); wait for it to end, "
                                 f"or pick another --out") from None
        previous = _read_pid(file)
        self.stale_pid = previous if previous and previous != os.getpid() else None
        file.seek(0)
        file.truncate()
        file.write(f"{os.getpid()}\n")
        file.flush()
        self._file = file

    def release(self):
        if self._file is None:
            return
        self._file.seek(0)
        self._file.truncate()          # a free lock with no pid: the last run ended cleanly
        self._file.flush()
        self._file.close()             # closing the file drops the flock
        self._file = None


def _read_pid(file) -> int | None:
    file.seek(0)
    text = file.read().strip()
    return int(text) if text.isdigit() else None


def remove_leftover_temporaries(directory: Path) -> list[Path]:
    """Delete the temporary files of saves that were killed before their rename; returns them."""
    leftovers = sorted(path for name in (CHECKPOINT_NAME, BEST_NAME) for path in Path(directory).glob(f".{name}.*.tmp"))
    for leftover in leftovers:
        leftover.unlink()
    return leftovers


class RunDirectory:
    """A claimed run directory (see claim_run_directory); a context manager that releases the lock."""

    def __init__(self, path: Path, resumed_from: Path | None):
        self.path = Path(path)
        self.checkpoint = self.path / CHECKPOINT_NAME
        self.resumed_from = resumed_from
        self.lock = DirectoryLock(self.path)

    def continues_its_own_run(self) -> bool:
        """Whether the checkpoint being resumed is this directory's own (as opposed to a new run here)."""
        return (self.resumed_from is not None and self.checkpoint.exists()
                and os.path.samefile(self.resumed_from, self.checkpoint))

    def begin(self, step: int):
        """Make the directory's files fit the run that now starts training at `step`.

        Resuming this directory's own run keeps the metrics records up to `step` (a killed run may
        have logged steps after its last save; they are logged again). A new run, or one resumed from
        another directory, starts afresh: the previous run's checkpoint, metrics and pictures go,
        and a resumed run's records up to `step` are copied from where it came from.
        """
        metrics = self.path / METRICS_NAME
        if self.continues_its_own_run():
            kept = records_up_to(metrics, step)
        else:
            kept = records_up_to(self.resumed_from.parent / METRICS_NAME, step) if self.resumed_from else []
            for name in (CHECKPOINT_NAME, BEST_NAME) + PICTURES:
                (self.path / name).unlink(missing_ok=True)
        if kept or metrics.exists():
            temporary = metrics.with_name(f".{METRICS_NAME}.tmp")
            temporary.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
            os.replace(temporary, metrics)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.lock.release()
        return False


def records_up_to(metrics: Path, step: int) -> list[str]:
    """The lines of a metrics log whose record is at `step` or before (a torn last line is dropped)."""
    if not metrics.exists():
        return []
    kept = []
    for line in metrics.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("step", 0) <= step:
            kept.append(line)
    return kept


def claim_run_directory(path: Path, resumed_from: Path | None = None, overwrite: bool = False) -> RunDirectory:
    """Create and lock the run directory `path`, or say in one line why this run may not write there.

    `resumed_from` is the checkpoint file being resumed (None for a new run). Prints what it found
    and cleaned up: a lock left by a killed run, temporary files of a killed save.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"{path}: cannot make the run directory ({error.strerror or error})") from None
    run_directory = RunDirectory(path, resumed_from)
    run_directory.lock.acquire()
    try:
        if run_directory.checkpoint.exists() and not overwrite and not run_directory.continues_its_own_run():
            raise UsageError(f"{path} already holds a run ({run_directory.checkpoint}); continue it with "
                             f"--resume {path}, pick another --out, or pass --overwrite to replace it")
        if run_directory.lock.stale_pid:
            print(f"note: {run_directory.lock.path} names pid {run_directory.lock.stale_pid}, which does not hold "
                  f"it (that run was killed, or the directory was copied from a running one); taking it over")
        leftovers = remove_leftover_temporaries(path)
        if leftovers:
            print(f"note: removed {len(leftovers)} temporary file{'s' * (len(leftovers) != 1)} of a save "
                  f"that was killed half way ({', '.join(p.name for p in leftovers)})")
    except BaseException:
        run_directory.lock.release()
        raise
    return run_directory
