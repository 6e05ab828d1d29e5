"""Training one model with N processes: `mpirun -n N python train.py ...` (data parallelism).

Every rank builds the same model (DistributedDataParallel broadcasts rank 0's parameters) and the
same stream of batches (same seed), and takes its own shard of the rows of every batch: with
--batch-size B each rank trains on B pairs a step, so a step sees N x B pairs (per rank, as torch).

Exactly one process's update: a rank's loss is the mean over its own target tokens, but ranks hold
different numbers of tokens once padding is left out, and the mean of means is not the mean. So the
ranks all-reduce their token counts (one number) and each rank's loss is scaled to
(its token sum) x N / (all tokens); DistributedDataParallel's average over the N ranks then gives
the gradient of (all ranks' token sum) / (all tokens): the update one process makes with the whole
batch. The logged loss is the same global mean (one all-reduce of three numbers).

Rank 0 alone writes: it holds the run directory (lock, checkpoints, metrics, pictures) and shows the
progress bar; a checkpoint holds the batch stream's position, not the ranks, so a run resumes with
any number of ranks. Decisions that one rank alone could make differently (stop on a signal, the
time budget) are all-reduced every step, so all ranks stop after the same step and rank 0 saves.

A rank that dies ends the job: mpirun ends every rank when one exits with an error or is killed; an
unhandled exception on one rank calls MPI Abort (instead of waiting forever in MPI's finalize), and
a collective that waits longer than the timeout (30 minutes) ends every rank too.
"""
from __future__ import annotations

import os
import sys
import time


import minigrad

from .data import Batch
from .errors import UsageError
from .run_directory import RunDirectory
from .run_log import TrainingLog

_stop_agreed = False   # set once every rank has agreed to stop (a signal's exit code is then no error)

# The world size that MPI launchers put in the environment of the processes they start: Open MPI's
# mpirun, and the PMI launchers (MPICH's and Intel MPI's mpiexec, srun --mpi=pmi2).
_LAUNCHER_SIZE_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE")


def launched_ranks() -> int:
    """How many processes the MPI launcher started (1 when not started by one)."""
    for name in _LAUNCHER_SIZE_VARIABLES:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 1


class Ranks:
    """The processes that train one model together; one alone when not launched by mpirun, and then
    every method is what a single process would do (nothing is imported from MPI)."""

    def __init__(self, rank: int = 0, size: int = 1):
        self.rank, self.size = rank, size
        self.main = rank == 0
        self.wrapped = None      # DistributedDataParallel around the model, once wrap() has made it

    @classmethod
    def join(cls, args) -> "Ranks":
        """Join the other ranks when launched by mpirun with more than one process. On GPUs (NCCL) each
        rank takes its own: --device cuda becomes cuda:<the rank's number on its machine>."""
        if launched_ranks() <= 1:
            return cls()
        import minigrad.distributed as dist

        if not dist.is_mpi_available():
            raise UsageError(f'started by an MPI launcher with {launched_ranks()} processes, but mpi4py is not '
                             'installed: pip install ".[distributed]"')
        on_gpu = str(args.device or minigrad.get_default_device()).startswith("cuda")
        if not dist.is_initialized():
            dist.init_process_group("nccl" if on_gpu else "mpi")
        if on_gpu:
            args.device = f"cuda:{dist.get_node_local_rank() % minigrad.cuda.device_count()}"
        sys.excepthook = _abort_on_uncaught
        if dist.get_rank() != 0:           # one copy of every message: rank 0's (errors still show)
            sys.stdout = open(os.devnull, "w")
        ranks = cls(dist.get_rank(), dist.get_world_size())
        print(f"ranks: {ranks.size} processes (pids {', '.join(map(str, ranks.pids()))}); Ctrl-C or kill -TERM of "
              "any of them stops all after the step, rank 0 saving", flush=True)
        return ranks

    def wrap(self, model):
        """The model to call in training steps: DistributedDataParallel around it when several ranks
        (the Transformer's buffers are constants, so they need no broadcast at every forward)."""
        if self.size == 1:
            return model
        from nn.parallel import DistributedDataParallel

        self.wrapped = DistributedDataParallel(model, broadcast_buffers=False)
        if self.rank > 0:   # dropout masks of their own: a seed drawn from the shared state, plus the rank
            minigrad.manual_seed(int(minigrad.randint(0, 2 ** 31, (1,)).item()) + self.rank)
        return self.wrapped

    def forward(self, model, *inputs):
        """model(*inputs); with several ranks through DistributedDataParallel, made at the first step
        (after a resumed run has restored the model), which broadcasts rank 0's parameters."""
        if self.size > 1 and self.wrapped is None:
            self.wrap(model)
        return (self.wrapped if self.wrapped is not None else model)(*inputs)

    def shard(self, batch: Batch, pad_id: int) -> Batch:
        """This rank's contiguous share of the batch's rows (all of them for one rank), its tokens
        counted without padding."""
        if self.size == 1:
            return batch
        rows = len(batch.src)
        return batch.rows(rows * self.rank // self.size, rows * (self.rank + 1) // self.size, pad_id)

    def sharded(self, stream):
        """The batch stream as this rank sees it: every batch's share of this rank (see shard)."""
        return stream if self.size == 1 else ShardedStream(stream, self)

    def backward(self, loss, nll, correct, tokens: int):
        """loss.backward() for `loss`, this rank's mean over its `tokens` tokens, scaled so that the
        averaged gradient is the one of the mean over every rank's tokens. Returns the step's (loss,
        nll, correct, tokens) over all ranks."""
        if self.size == 1:
            loss.backward()
            return loss, nll, correct, tokens
        total = int(self._summed([float(tokens)])[0])
        (loss * (tokens * self.size / max(total, 1))).backward()
        return self.global_means(loss, nll, correct, tokens, total) + (total,)

    def global_means(self, loss, nll, correct, tokens: int, total_tokens: int):
        """(loss, nll, correct) of the whole step over all ranks' tokens, as tensors."""
        mine = [float(loss.item()) * tokens, float(nll.item()) * tokens, float(correct.item())] if tokens else [0.0] * 3
        sums = self._summed(mine)
        per_token = max(total_tokens, 1)
        return tuple(minigrad.tensor(value, dtype=minigrad.float64, device=loss.device)
                     for value in (sums[0] / per_token, sums[1] / per_token, sums[2]))

    def any(self, flag: bool) -> bool:
        """Whether `flag` is true on any rank (every rank gets the same answer)."""
        if self.size == 1:
            return bool(flag)
        return self._summed([1.0 if flag else 0.0])[0] > 0

    def pids(self) -> list[int]:
        """Every rank's process id, in rank order (for `kill -TERM` of one of them)."""
        if self.size == 1:
            return [os.getpid()]
        import minigrad.distributed as dist

        outputs = [minigrad.zeros(1, dtype=minigrad.int64) for _ in range(self.size)]
        dist.all_gather(outputs, minigrad.tensor([os.getpid()], dtype=minigrad.int64))
        return [int(out.item()) for out in outputs]

    # -- what train.py's run asks of the ranks beyond the step --------------------------------------
    def claim(self, claim_run_directory, path, resumed_from, overwrite: bool):
        """Rank 0 claims (and locks) the run directory; the other ranks only read from it."""
        if self.main:
            return claim_run_directory(path, resumed_from, overwrite)
        return FollowerDirectory(path, resumed_from)

    def training_log(self, run_dir, total_steps: int, first_step: int, show_progress: bool) -> TrainingLog:
        """Rank 0's log writes metrics.jsonl and shows the progress bar; the others' only keep time."""
        if self.main:
            return TrainingLog(run_dir, total_steps, first_step, show_progress)
        return QuietLog(run_dir, total_steps, first_step, False)

    def global_batch_size(self, settings: dict, saved_state: dict | None = None) -> int:
        """Pairs per step over all ranks: --batch-size (per rank) x ranks for a new run; a resumed run
        keeps its checkpoint's, whatever the number of ranks now, so it goes on exactly (a checkpoint
        from before there were ranks was a single process's: --batch-size pairs a step)."""
        if "global_batch_size" not in settings:
            settings["global_batch_size"] = settings["batch_size"] * (1 if saved_state else self.size)
        total = settings["global_batch_size"]
        if total != settings["batch_size"] * self.size:
            print(f"note: this run trains on {total} pairs a step (--batch-size {settings['batch_size']} per rank "
                  f"when it began); on {self.size} rank(s) each now takes about {total // self.size}")
        return total

    def stop_requested(self, interrupt) -> bool:
        """Whether any rank was asked to stop (Ctrl-C, SIGTERM, SIGHUP); then every rank stops here."""
        global _stop_agreed
        signum = int(self._largest(float(interrupt.signum or 0) if interrupt.requested else 0.0))
        if not signum:
            return False
        interrupt.requested, interrupt.signum, _stop_agreed = True, interrupt.signum or signum, True
        return True

    def _largest(self, value: float) -> float:
        if self.size == 1:
            return value
        import minigrad.distributed as dist

        largest = minigrad.tensor([value], dtype=minigrad.float64)
        dist.all_reduce(largest, op=dist.ReduceOp.MAX)
        return largest.item()

    def _summed(self, values: list[float]) -> list[float]:
        import minigrad.distributed as dist

        totals = minigrad.tensor(values, dtype=minigrad.float64)
        dist.all_reduce(totals, op=dist.ReduceOp.SUM)
        return totals.tolist()


def _abort(code: int):
    from mpi4py import MPI

    sys.stdout.flush()
    sys.stderr.flush()
    MPI.COMM_WORLD.Abort(code)


def _abort_on_uncaught(kind, value, traceback):
    """An exception no one caught on one rank: print it, then end every rank (not hang in finalize)."""
    sys.__excepthook__(kind, value, traceback)
    _abort(1)



class ShardedStream:
    """A BatchStream whose next() gives this rank's shard of the next batch. Its position, saved in
    checkpoints, is the whole stream's (not the rank's): a run resumes on any number of ranks."""

    def __init__(self, stream, ranks: Ranks):
        self.stream, self.ranks = stream, ranks

    def next(self) -> Batch:
        return self.ranks.shard(self.stream.next(), self.stream.corpus.tgt_vocab.pad_id)

    def __getattr__(self, name):          # epochs_done, batches_per_epoch, state_dict, load_state_dict
        return getattr(self.stream, name)


class FollowerDirectory:
    """The run directory as ranks other than 0 see it: the same paths, no lock, nothing written."""

    def __init__(self, path, resumed_from):
        self._directory = RunDirectory(path, resumed_from)
        self.path, self.checkpoint = self._directory.path, self._directory.checkpoint

    def continues_its_own_run(self) -> bool:
        return self._directory.continues_its_own_run()

    def begin(self, step: int):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False


class QuietLog(TrainingLog):
    """The training log of ranks other than 0: it keeps time (the time budget) and writes nothing."""

    def train(self, step: int, epoch: float, lr: float):
        self._start_window(time.perf_counter())

    def valid(self, record: dict):
        pass

    def note(self, message: str):
        pass


def exit_code(code: int) -> int:
    """train.py's exit code. Under mpirun, an error the ranks did not agree on ends every rank
    (MPI Abort): a rank that stops alone must not leave the others waiting for it."""
    import minigrad.distributed as dist

    if dist.is_initialized() and dist.get_world_size() > 1:
        if code != 0 and not _stop_agreed:
            _abort(code)
        if _stop_agreed:
            dist.barrier()        # every rank stopped on a signal: none ends before rank 0 has saved
    return code
