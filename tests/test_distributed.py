"""minigrad.distributed, DistributedDataParallel and train.py under a real `mpirun -n 2`.

Each test starts a job of 2 processes (tests/mpi_launch.py) and checks what it did; they skip,
naming the reason, where mpi4py or mpirun is missing (pip install ".[distributed]" brings both).
In-process tests of the pieces that need no MPI are at the end.
"""
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import minigrad
import mpi_launch
from transformer.data import Batch
from transformer.distributed_training import Ranks, launched_ranks

needs_mpi = pytest.mark.skipif(mpi_launch.why_not() is not None, reason=str(mpi_launch.why_not()))
WORKERS = mpi_launch.ROOT / "tests" / "distributed"


def _check(result, expected_line):
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert expected_line in result.stdout, result.stdout + result.stderr


@needs_mpi
def test_collectives_agree_with_numpy_on_two_ranks():
    _check(mpi_launch.run(2, str(WORKERS / "collectives_worker.py")), "collectives ok on 2 ranks")


@needs_mpi
def test_two_ranks_make_the_one_process_update_with_and_without_buckets_and_no_sync():
    _check(mpi_launch.run(2, str(WORKERS / "ddp_worker.py")), "ddp ok")


@needs_mpi
def test_a_rank_that_never_joins_ends_the_job_after_the_timeout():
    started = time.monotonic()
    result = mpi_launch.run(2, str(WORKERS / "stuck_worker.py"), timeout=90)
    assert result.returncode != 0
    assert "waited more than 2 s for all_reduce" in result.stderr, result.stderr
    assert "not reached" not in result.stdout
    assert time.monotonic() - started < 60      # not the 120 s that rank 1 sleeps


TRAIN = ["train.py", "--task", "copy", "--d-model", "16", "--heads", "2", "--d-ff", "32", "--layers", "1",
         "--dropout", "0", "--valid-size", "0", "--no-progress", "--examples", "0", "--log-every", "1"]


def _train(tmp_path, ranks, name, *flags, timeout=180):
    out = tmp_path / name
    args = TRAIN + ["--out", str(out), *flags]
    if ranks == 1:
        result = subprocess.run([sys.executable, *args], cwd=mpi_launch.ROOT, env=mpi_launch.environment(),
                                capture_output=True, text=True, timeout=timeout)
    else:
        result = mpi_launch.run(ranks, *args, timeout=timeout)
    return result, out


def _weights(run_dir):
    state = minigrad.load(run_dir / "last.ckpt", map_location="cpu")
    return {k: v.numpy() for k, v in state["model"].items()}


@needs_mpi
def test_train_py_on_two_ranks_matches_one_process_and_resumes_on_one(tmp_path):
    """2 ranks x 4 pairs == 1 process x 8 pairs (float32: to rounding); rank 0 alone writes; the
    2-rank run resumed by one process goes on as the 1-process run does."""
    one, one_dir = _train(tmp_path, 1, "one", "--batch-size", "8", "--steps", "6")
    two, two_dir = _train(tmp_path, 2, "two", "--batch-size", "4", "--steps", "3")
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stdout + two.stderr
    assert two.stdout.count("stopped after step 3") == 1           # rank 0's output only
    records = [json.loads(line) for line in (two_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "train"] == [1, 2, 3]   # one writer, no duplicates
    one_records = [json.loads(line) for line in (one_dir / "metrics.jsonl").read_text().splitlines()]
    for mine, theirs in zip([r for r in records if r["kind"] == "train"], [r for r in one_records
                                                                          if r["kind"] == "train"]):
        assert mine["loss"] == pytest.approx(theirs["loss"], rel=1e-5)   # the global mean loss, logged
    resumed, _ = _train(tmp_path, 1, "two", "--resume", str(two_dir), "--steps", "6")
    assert resumed.returncode == 0, resumed.stderr
    assert "each now takes about 8" in resumed.stdout
    losses = [r["loss"] for r in map(json.loads, (two_dir / "metrics.jsonl").read_text().splitlines())
              if r["kind"] == "train"]
    assert losses == pytest.approx([r["loss"] for r in one_records if r["kind"] == "train"], rel=1e-5)
    expected, got = _weights(one_dir), _weights(two_dir)
    for name in expected:
        if name.endswith("in_proj_bias"):   # the key bias: its gradient is 0 up to rounding, which Adam
            d = len(expected[name]) // 3    # blows up to about +-lr in float32 however the sums are split
            expected[name], got[name] = np.delete(expected[name], np.s_[d:2 * d]), np.delete(got[name], np.s_[d:2 * d])
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-4, atol=1e-5, err_msg=name)


@needs_mpi
def test_validation_on_two_ranks_is_rank_0s_and_patience_stops_both(tmp_path):
    """Rank 0 alone validates and keeps best.ckpt; a --patience stop is agreed, so no rank is left
    waiting in a collective (the job would then end by the timeout with an error)."""
    flags = ["--valid-size", "8", "--eval-every", "1", "--eval-sentences", "4", "--select-by", "loss",
             "--patience", "1", "--lr", "1e-9", "--steps", "30", "--batch-size", "4"]
    result, run_dir = _train(tmp_path, 2, "validated", *flags)
    assert result.returncode == 0, result.stdout + result.stderr
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    valid = [r for r in records if r["kind"] == "valid"]
    assert [r["step"] for r in valid] == list(range(1, len(valid) + 1)) and len(valid) < 30   # once each
    assert "(--patience 1)" in result.stdout and (run_dir / "best.ckpt").is_file()
    assert minigrad.load(run_dir / "best.ckpt", map_location="cpu")["step"] == [r for r in valid if r["best"]][-1]["step"]


@needs_mpi
def test_sigterm_to_one_rank_stops_every_rank_with_rank_0s_checkpoint(tmp_path):
    out = tmp_path / "stopped"
    command = mpi_launch.mpirun_command(2, *(TRAIN + ["--out", str(out), "--batch-size", "4", "--steps", "100000",
                                                        "--time-budget", "120"]))
    job = subprocess.Popen(command, cwd=mpi_launch.ROOT, env=mpi_launch.environment(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        pids = None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and pids is None:
            line = job.stdout.readline()
            if line.startswith("ranks:"):
                pids = [int(p) for p in line.split("pids")[1].split(")")[0].replace(",", " ").split()]
        assert pids is not None and len(pids) == 2
        while not (out / "metrics.jsonl").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        import os
        os.kill(pids[1], signal.SIGTERM)           # the rank that writes nothing
        stdout, stderr = job.communicate(timeout=60)
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode != 0
    assert "checkpoint saved to" in stderr, stderr
    state = minigrad.load(out / "last.ckpt", map_location="cpu")
    assert state["step"] > 0


@needs_mpi
def test_an_error_on_rank_0_alone_ends_every_rank(tmp_path):
    """Rank 0 alone claims the run directory; when it refuses, the other rank must not wait forever."""
    first, out = _train(tmp_path, 1, "taken", "--batch-size", "4", "--steps", "1")
    assert first.returncode == 0, first.stderr
    started = time.monotonic()
    second, _ = _train(tmp_path, 2, "taken", "--batch-size", "4", "--steps", "1", timeout=120)
    assert second.returncode == 2, second.stdout + second.stderr
    assert "already holds a run" in second.stderr
    assert time.monotonic() - started < 60


@needs_mpi
def test_a_killed_rank_ends_the_job(tmp_path):
    command = mpi_launch.mpirun_command(2, *(TRAIN + ["--out", str(tmp_path / "killed"), "--batch-size", "4",
                                                        "--steps", "100000", "--time-budget", "120"]))
    job = subprocess.Popen(command, cwd=mpi_launch.ROOT, env=mpi_launch.environment(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        line = ""
        deadline = time.monotonic() + 90
        while not line.startswith("ranks:") and time.monotonic() < deadline:
            line = job.stdout.readline()
        pid = int(line.split("pids")[1].split(")")[0].replace(",", " ").split()[1])
        import os
        os.kill(pid, signal.SIGKILL)
        started = time.monotonic()
        job.communicate(timeout=60)
        assert time.monotonic() - started < 30
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode != 0


# -- without MPI -------------------------------------------------------------------------------------
def _batch(lengths, pad=0):
    width = max(lengths)
    tgt = np.full((len(lengths), width), pad)
    for row, n in enumerate(lengths):
        tgt[row, :n] = np.arange(1, n + 1)
    return Batch(tgt.copy(), tgt.copy(), tgt, int(sum(lengths)))


def test_shards_cover_every_row_once_and_count_their_own_tokens():
    batch = _batch([5, 1, 3, 2, 4])
    shards = [Ranks(r, 2).shard(batch, 0) for r in range(2)]
    assert [len(s.src) for s in shards] == [2, 3]
    np.testing.assert_array_equal(np.concatenate([s.tgt_out for s in shards]), batch.tgt_out)
    assert [s.n_tokens for s in shards] == [6, 9]


def test_a_rank_without_rows_gets_one_row_that_counts_for_nothing():
    shard = Ranks(0, 3).shard(_batch([4, 2]), 0)
    assert len(shard.src) == 1 and shard.n_tokens == 0 and not shard.tgt_out.any()


def test_one_process_ranks_change_nothing():
    ranks = Ranks()
    batch = _batch([3, 2])
    assert ranks.shard(batch, 0) is batch and ranks.any(True) and not ranks.any(False)
    assert ranks.global_batch_size({"batch_size": 7}) == 7


def test_pairs_per_step_are_per_rank_for_a_new_run_and_the_checkpoints_on_resume(capsys):
    assert Ranks(0, 4).global_batch_size({"batch_size": 8}) == 32
    resumed = {"batch_size": 8, "global_batch_size": 32}
    assert Ranks(0, 2).global_batch_size(resumed, {"step": 3}) == 32     # 16 a rank now, said in a note
    assert "each now takes about 16" in capsys.readouterr().out
    assert Ranks(0, 2).global_batch_size({"batch_size": 8}, {"step": 3}) == 8   # an older checkpoint: 1 process


def test_not_launched_by_mpirun_means_one_rank(monkeypatch):
    for name in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert launched_ranks() == 1
    monkeypatch.setenv("PMI_SIZE", "4")
    assert launched_ranks() == 4


def test_importing_minigrad_does_not_start_mpi():
    code = "import sys, minigrad, nn, minigrad.distributed; print('mpi4py' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=mpi_launch.ROOT, capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


def test_collectives_without_a_process_group_say_so():
    import minigrad.distributed as dist
    import nn

    assert not dist.is_initialized() and dist.get_rank() == -1 and dist.get_world_size() == -1
    with pytest.raises(RuntimeError, match="init_process_group"):
        dist.all_reduce(minigrad.ones(2))
    with pytest.raises(RuntimeError, match="init_process_group"):
        nn.parallel.DistributedDataParallel(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="backend must be 'mpi' or 'nccl'"):
        dist.init_process_group("gloo")
