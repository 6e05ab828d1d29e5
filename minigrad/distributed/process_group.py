"""The default process group: who this process is among the launched ones, and the library that
carries their collectives.

`mpirun -n N python script.py` starts N copies of a program; MPI numbers them (the rank, 0..N-1)
and knows their count (the world size). init_process_group reads both from MPI, so there is no
address, port or rendezvous file to configure, and picks the library that moves the data:
MPI itself for arrays in host memory, NCCL for arrays on NVIDIA GPUs.
"""
from __future__ import annotations

import datetime
import enum
import importlib.util
import sys
import time

# torch's default for its CPU backends: long enough for a slow step or a checkpoint on rank 0,
# short enough that a job whose rank died ends on its own.
DEFAULT_TIMEOUT = datetime.timedelta(minutes=30)


class ReduceOp(enum.Enum):
    """How all_reduce combines the ranks' tensors, element by element."""
    SUM = "sum"
    PRODUCT = "product"
    MIN = "min"
    MAX = "max"
    AVG = "avg"


class Work:
    """A collective in flight (what `async_op=True` returns). wait() returns once the result is in
    the tensor; a wait longer than the process group's timeout ends every rank (see _abort)."""

    def __init__(self, test, finish=None, what="collective", timeout=None, host_waits=True):
        self._test, self._finish, self.what, self._timeout = test, finish, what, timeout
        self._host_waits = host_waits     # False for NCCL: wait() makes the GPU wait, and returns at once
        self._done = False

    def is_completed(self) -> bool:
        """Whether the collective has finished; asking also lets MPI progress it."""
        if not self._done and self._test():
            self._complete()
        return self._done

    def wait(self, timeout=None) -> bool:
        if self._done:
            return True
        if not self._host_waits:
            self._complete()
            return True
        limit = _seconds(timeout if timeout is not None else self._timeout)
        deadline = time.monotonic() + limit
        while not self._test():      # MPI's own wait polls as well; polling here lets a wait time out
            if time.monotonic() > deadline:
                _abort(f"rank {get_rank()} waited more than {limit:g} s for {self.what}: another rank has "
                       "probably died or stopped; ending every rank")
        self._complete()
        return True

    def _complete(self):
        self._done = True
        if self._finish is not None:
            self._finish()


class _ProcessGroup:
    def __init__(self, name, comm, host_carrier, device_carrier, timeout):
        self.name, self.comm, self.timeout = name, comm, timeout
        self.host_carrier, self.device_carrier = host_carrier, device_carrier   # MPI; NCCL (or None)
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        node = comm.Split_type(_mpi().COMM_TYPE_SHARED)   # the ranks that share this machine's memory
        self.local_rank = node.Get_rank()   # this process's number among those on its own machine
        node.Free()


_group: _ProcessGroup | None = None


def is_available() -> bool:
    return True


def is_mpi_available() -> bool:
    """Whether mpi4py is installed (checked without importing it, which would start MPI)."""
    return importlib.util.find_spec("mpi4py") is not None


def is_nccl_available() -> bool:
    """Whether CuPy with NCCL is installed and sees a GPU (imports CuPy, not mpi4py)."""
    from ..backend import cupy_backend

    return cupy_backend.cuda_is_available() and cupy_backend.nccl_module() is not None


def init_process_group(backend: str | None = None, init_method=None, timeout=None, world_size: int = -1,
                       rank: int = -1, store=None, group_name: str = "", pg_options=None, device_id=None):
    """Join the processes started by the MPI launcher (mpirun, mpiexec, srun) as one group.

    backend: "mpi" (the default; tensors in host memory) or "nccl" (CUDA tensors go through NCCL,
    host tensors still through MPI; one GPU per rank: rank r on its machine uses GPU r % the GPUs
    there, unless device_id says which; make its tensors on f"cuda:{get_node_local_rank()}"). timeout: how long
    a collective may wait for the other ranks before every rank is ended (default 30 minutes).
    Rank and world size come from MPI; world_size/rank, when given, must agree with it.
    """
    global _group
    if _group is not None:
        raise RuntimeError("trying to initialize the default process group twice!")
    name = "mpi" if backend is None else str(backend).lower()
    if name not in ("mpi", "nccl"):
        raise ValueError(f"init_process_group: backend must be 'mpi' or 'nccl', got {backend!r}")
    if init_method is not None or store is not None:
        raise ValueError("init_process_group: rank and world size come from the MPI launcher "
                         "(mpirun -n N ...); init_method and store are not used")
    if not is_mpi_available():
        raise RuntimeError('init_process_group: mpi4py is not installed (pip install ".[distributed]")')
    MPI = _mpi()
    comm = MPI.COMM_WORLD.Dup()     # a communicator of our own: a user's MPI calls cannot mix with ours
    for asked, actual, what in ((world_size, comm.Get_size(), "world_size"), (rank, comm.Get_rank(), "rank")):
        if asked not in (-1, None) and asked != actual:
            raise ValueError(f"init_process_group: {what}={asked}, but the MPI launcher says {actual}")
    seconds = _seconds(timeout if timeout is not None else DEFAULT_TIMEOUT)
    from .mpi_carrier import MPICarrier

    host_carrier = MPICarrier(comm, MPI, seconds)      # tensors in host memory always go through MPI
    if name == "mpi":
        device_carrier = None
    else:
        from .nccl_carrier import NCCLCarrier

        device_carrier = NCCLCarrier(comm, MPI, seconds, device_id)
    group = _ProcessGroup(name, comm, host_carrier, device_carrier, seconds)
    if device_carrier is not None:
        device_carrier.connect(group.local_rank)
    _group = group


def destroy_process_group(group=None):
    """Leave the group (MPI itself is finalized when the process exits)."""
    global _group
    if _group is None:
        return
    if _group.device_carrier is not None:
        _group.device_carrier.close()
    _group.comm.Free()
    _group = None


def is_initialized() -> bool:
    return _group is not None


def get_rank(group=None) -> int:
    """This process's number, 0..world size - 1; -1 outside a process group (as torch)."""
    return _group.rank if _group is not None else -1


def get_world_size(group=None) -> int:
    """How many processes take part; -1 outside a process group (as torch)."""
    return _group.size if _group is not None else -1


def get_node_local_rank(fallback_rank: int | None = None) -> int:
    """This process's number among the ranks on its own machine (which GPU it should use)."""
    if _group is not None:
        return _group.local_rank
    if fallback_rank is not None:
        return fallback_rank
    raise RuntimeError("get_node_local_rank: no process group (call init_process_group first)")


def get_backend(group=None) -> str:
    return _default_group().name


def _default_group() -> _ProcessGroup:
    if _group is None:
        raise RuntimeError("Default process group has not been initialized, please make sure to call "
                           "init_process_group.")
    return _group


def _mpi():
    from mpi4py import MPI   # starts MPI (MPI_Init_thread) on first import

    return MPI


def _seconds(timeout) -> float:
    return timeout.total_seconds() if isinstance(timeout, datetime.timedelta) else float(timeout)


def _abort(message: str, code: int = 1):
    """End every rank of the job: one rank that cannot go on must not leave the others waiting."""
    print(f"minigrad.distributed: {message}", file=sys.stderr, flush=True)
    if _group is not None:
        _mpi().COMM_WORLD.Abort(code)
    raise SystemExit(code)
