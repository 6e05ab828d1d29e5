"""Run directories (transformer/run_directory.py): one run per directory, one writer at a time, a
killed run's lock and temporary files cleaned up, and a metrics log that never holds a step twice."""
import json
import os
import signal
import subprocess
import sys

import pytest

from transformer.errors import UsageError
from transformer.run_directory import LOCK_NAME, claim_run_directory, records_up_to, remove_leftover_temporaries
from transformer.run_log import METRICS_NAME, read_records


def make_run(directory, steps=(1, 2, 3)):
    """A directory that looks like a finished run's: a checkpoint and a metrics log."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "last.ckpt").write_bytes(b"checkpoint")
    (directory / METRICS_NAME).write_text("".join(json.dumps({"kind": "train", "step": s}) + "\n" for s in steps))
    return directory


def test_one_writer_at_a_time_and_the_lock_names_its_pid(tmp_path):
    with claim_run_directory(tmp_path / "run") as first:
        assert (tmp_path / "run" / LOCK_NAME).read_text().strip() == str(os.getpid())
        with pytest.raises(UsageError, match=rf"run is in use by another run \(pid {os.getpid()}\); wait for it"):
            claim_run_directory(tmp_path / "run")
        assert first.lock._file is not None
    assert (tmp_path / "run" / LOCK_NAME).read_text() == ""     # released, and a clean end clears the pid
    with claim_run_directory(tmp_path / "run"):
        pass


def test_a_killed_runs_lock_is_taken_over(tmp_path, capsys):
    run_dir = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from transformer.run_directory import claim_run_directory; "
                               "claimed = claim_run_directory(Path(sys.argv[1])); print('locked', flush=True); time.sleep(60)",
                               str(run_dir)], stdout=subprocess.PIPE, text=True,
                              cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(UsageError, match=f"pid {holder.pid}"):
            claim_run_directory(run_dir)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    assert (run_dir / LOCK_NAME).read_text().strip() == str(holder.pid)    # the killed run left its pid
    with claim_run_directory(run_dir) as claimed:
        assert claimed.lock.stale_pid == holder.pid
    assert f"names pid {holder.pid}, which does not hold it" in capsys.readouterr().out


def test_a_new_run_where_a_run_is_is_refused_unless_overwrite(tmp_path):
    run_dir = make_run(tmp_path / "run")
    with pytest.raises(UsageError) as error:
        claim_run_directory(run_dir)
    message = str(error.value)
    assert str(run_dir) in message and "--resume" in message and "--out" in message and "--overwrite" in message
    with claim_run_directory(run_dir, resumed_from=run_dir / "last.ckpt"):    # a refusal keeps no lock
        pass
    with claim_run_directory(run_dir, overwrite=True) as claimed:
        (run_dir / "curves.png").write_bytes(b"old picture")
        claimed.begin(0)
        assert not (run_dir / "last.ckpt").exists() and not (run_dir / "curves.png").exists()
        assert read_records(run_dir) == []


def test_resuming_keeps_the_records_up_to_the_resumed_step(tmp_path):
    run_dir = make_run(tmp_path / "run", steps=(1, 2, 3, 4, 5))
    with open(run_dir / METRICS_NAME, "a") as log:
        log.write('{"kind": "train", "st')                    # a line torn by a kill
    with claim_run_directory(run_dir, resumed_from=run_dir / "last.ckpt") as claimed:
        assert claimed.continues_its_own_run()
        claimed.begin(3)
    assert [r["step"] for r in read_records(run_dir)] == [1, 2, 3]
    assert (run_dir / "last.ckpt").read_bytes() == b"checkpoint"


def test_resuming_into_another_directory_starts_it_from_the_resumed_run(tmp_path):
    source = make_run(tmp_path / "source", steps=(1, 2, 3, 4))
    target = make_run(tmp_path / "target", steps=(7, 8))
    with pytest.raises(UsageError, match="already holds a run"):
        claim_run_directory(target, resumed_from=source / "last.ckpt")
    with claim_run_directory(target, resumed_from=source / "last.ckpt", overwrite=True) as claimed:
        assert not claimed.continues_its_own_run()
        claimed.begin(2)
    assert [r["step"] for r in read_records(target)] == [1, 2] and not (target / "last.ckpt").exists()
    assert [r["step"] for r in read_records(source)] == [1, 2, 3, 4]       # the source is only read


def test_temporary_files_of_a_killed_save_are_removed(tmp_path, capsys):
    run_dir = make_run(tmp_path / "run")
    leftover = run_dir / ".last.ckpt.k2j4_x.tmp"
    leftover.write_bytes(b"half a checkpoint")
    (run_dir / "keep.tmp").write_bytes(b"not ours")
    with claim_run_directory(run_dir, resumed_from=run_dir / "last.ckpt"):
        pass
    assert not leftover.exists() and (run_dir / "keep.tmp").exists() and (run_dir / "last.ckpt").exists()
    assert "removed 1 temporary file of a save that was killed half way" in capsys.readouterr().out
    assert remove_leftover_temporaries(run_dir) == []


def test_records_up_to(tmp_path):
    assert records_up_to(tmp_path / "none.jsonl", 3) == []
    path = tmp_path / METRICS_NAME
    path.write_text('{"kind": "train", "step": 2}\n{"kind": "eval", "step": 3}\n\n{"kind": "train", "step": 4}\n')
    assert records_up_to(path, 3) == ['{"kind": "train", "step": 2}', '{"kind": "eval", "step": 3}']


def test_a_directory_that_cannot_be_written_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UsageError, match="cannot make the run directory"):
        claim_run_directory(blocker / "run")
