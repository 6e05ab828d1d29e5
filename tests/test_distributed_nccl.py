"""The NCCL carrier: its calls into cupy.cuda.nccl, proven without a GPU on a recording stand-in
(device pointers, dtype and op codes, the current stream, NCCL's unique id sent over MPI as raw bytes,
the GPU and not the host waiting), and for real where CuPy, NCCL, a GPU and mpirun are all present."""
from types import SimpleNamespace

import numpy as np
import pytest

import mpi_launch
from minigrad.distributed import ReduceOp
from minigrad.distributed import nccl_carrier as carrier_module


class RecordingNccl:
    """Stands in for cupy.cuda.nccl: records every call; a world of `size` identical ranks."""
    NCCL_SUM, NCCL_PROD, NCCL_MAX, NCCL_MIN = 0, 1, 2, 3
    NCCL_FLOAT32, NCCL_FLOAT64 = 7, 8
    available = True

    def __init__(self, size, with_avg):
        self.calls, self.size = [], size
        if with_avg:
            self.NCCL_AVG = 4
        nccl = self

        class NcclCommunicator:
            def __init__(self, ndev, comm_id, rank):
                nccl.calls.append(("communicator", ndev, comm_id, rank))

            def allReduce(self, send, recv, count, dtype, op, stream):
                nccl.calls.append(("allReduce", send, recv, count, dtype, op, stream))
                if op == nccl.NCCL_SUM:          # every rank holds the same values
                    nccl.arrays[recv][...] *= nccl.size

            def bcast(self, buffer, count, dtype, root, stream):
                nccl.calls.append(("bcast", buffer, count, dtype, root, stream))

            def destroy(self):
                nccl.calls.append(("destroy",))
        self.NcclCommunicator = NcclCommunicator
        self.arrays = {}

    def get_unique_id(self):
        return tuple(range(-64, 64))


class RecordingCuda:
    """Stands in for cupy.cuda: the current stream (ptr 4242) and streams made by Stream() (5151),
    whose event waits are recorded."""

    def __init__(self, log):
        def stream(ptr):
            made = SimpleNamespace(ptr=ptr, waited=[], synchronize=lambda: log.append(("synchronize", ptr)))
            made.wait_event = lambda event: made.waited.append(event)
            return made

        def event(disable_timing):
            made = SimpleNamespace(done=True, recorded_on=None)
            made.record = lambda on: (setattr(made, "recorded_on", on.ptr), log.append(("record", on.ptr)))
            return made
        self.current = stream(4242)
        self.Stream = lambda non_blocking: stream(5151)
        self.Event = event
        self.runtime = SimpleNamespace(getDeviceCount=lambda: 2)
        self.used = []
        self.Device = lambda index: SimpleNamespace(use=lambda: self.used.append(index))

    def get_current_stream(self):
        return self.current


class OneRankMpi:
    def __init__(self, size):
        self.size, self.sent = size, []

    def Get_rank(self):
        return 0

    def Get_size(self):
        return self.size

    def Bcast(self, buffer, root):
        self.sent.append((type(buffer), bytes(buffer), root))


class DeviceArray:
    """A device array as NCCL sees it: a pointer, a size, a dtype (values kept in NumPy here)."""

    def __init__(self, nccl, values):
        self.values, self.size, self.dtype, self.flags = values, values.size, values.dtype, values.flags
        self.data = SimpleNamespace(ptr=1000 + len(nccl.arrays))
        nccl.arrays[self.data.ptr] = values

    def __getitem__(self, index):
        return self.values[index]

    def __setitem__(self, index, value):
        self.values[index] = value


@pytest.fixture
def carrier(monkeypatch, request):
    with_avg = getattr(request, "param", True)
    nccl = RecordingNccl(size=2, with_avg=with_avg)
    cuda = RecordingCuda(nccl.calls)
    monkeypatch.setattr(carrier_module.cupy_backend, "nccl_module", lambda: nccl)
    monkeypatch.setattr(carrier_module.cupy_backend, "cuda_is_available", lambda: True)
    monkeypatch.setattr(carrier_module.cupy_backend, "cuda_runtime", lambda: cuda)
    mpi = OneRankMpi(size=2)
    made = carrier_module.NCCLCarrier(mpi, None, timeout=5.0)
    made.connect(local_rank=3)
    return made, nccl, cuda, mpi


def test_connect_takes_the_ranks_gpu_and_sends_nccls_id_over_mpi_as_bytes(carrier):
    made, nccl, cuda, mpi = carrier
    assert cuda.used == [1] and made.device_id == 1            # local rank 3 on a machine with 2 GPUs
    assert mpi.sent == [(bytearray, bytes(v & 0xFF for v in range(-64, 64)), 0)]
    assert nccl.calls[-1] == ("communicator", 2, tuple(range(-64, 64)), 0)


def test_all_reduce_runs_on_device_pointers_on_its_own_stream_and_the_gpu_waits(carrier):
    made, nccl, cuda, _ = carrier
    array = DeviceArray(nccl, np.arange(6, dtype=np.float32))
    work = made.all_reduce(array, ReduceOp.SUM)
    assert ("allReduce", array.data.ptr, array.data.ptr, 6, nccl.NCCL_FLOAT32, nccl.NCCL_SUM, 5151) in nccl.calls
    ready = made.stream.waited[-1]
    assert ready.recorded_on == 4242          # the collective starts after what the current stream queued
    assert cuda.current.waited == []          # ... and the current stream goes on meanwhile
    assert work.wait() and work.is_completed()
    assert [e.recorded_on for e in cuda.current.waited] == [5151]   # the stream waits for the end, not the host
    assert ("synchronize", 4242) not in nccl.calls and ("synchronize", 5151) not in nccl.calls
    np.testing.assert_array_equal(array.values, 2 * np.arange(6))


def test_average_is_ncclavg_when_nccl_has_it(carrier):
    made, nccl, _, _ = carrier
    array = DeviceArray(nccl, np.ones(3, dtype=np.float64))
    made.all_reduce(array, ReduceOp.AVG).wait()
    assert nccl.calls[-2][5] == nccl.NCCL_AVG and nccl.calls[-2][4] == nccl.NCCL_FLOAT64


@pytest.mark.parametrize("carrier", [False], indirect=True)
def test_average_without_ncclavg_is_the_sum_divided_on_the_device(carrier):
    made, nccl, _, _ = carrier
    array = DeviceArray(nccl, np.full(4, 3.0, dtype=np.float32))
    made.all_reduce(array, ReduceOp.AVG).wait()
    np.testing.assert_array_equal(array.values, np.full(4, 3.0))  # (3 + 3) / 2


def test_bad_tensors_are_refused_by_name(carrier):
    made, nccl, _, _ = carrier
    with pytest.raises(TypeError, match="NCCL cannot carry int16"):
        made.all_reduce(DeviceArray(nccl, np.ones(2, dtype=np.int16)), ReduceOp.SUM)
    strided = DeviceArray(nccl, np.ones((4, 4), dtype=np.float32)[:, ::2])
    with pytest.raises(ValueError, match="contiguous"):
        made.broadcast(strided, 0)


def _real_nccl_reason():
    from minigrad.backend import cupy_backend

    if not cupy_backend.cuda_is_available():
        return "no CuPy or no GPU"
    if cupy_backend.nccl_module() is None:
        return "CuPy has no NCCL"
    return mpi_launch.why_not()


@pytest.mark.gpu
@pytest.mark.skipif(_real_nccl_reason() is not None, reason=str(_real_nccl_reason()))
def test_collectives_over_real_nccl():
    from minigrad.backend import cuda_device_count

    ranks = min(2, cuda_device_count())      # NCCL wants one GPU per rank
    result = mpi_launch.run(ranks, str(mpi_launch.ROOT / "tests" / "distributed" / "nccl_worker.py"), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "nccl ok" in result.stdout


def test_a_work_the_gpu_waits_for_returns_at_once_and_a_host_wait_times_out(capsys):
    from minigrad.distributed import Work

    finished = []
    on_gpu = Work(lambda: False, lambda: finished.append(1), "all_reduce", timeout=0.01, host_waits=False)
    assert not on_gpu.is_completed()
    assert on_gpu.wait() and finished == [1] and on_gpu.is_completed()
    on_host = Work(lambda: False, None, "broadcast", timeout=0.01)
    with pytest.raises(SystemExit):
        on_host.wait()
    assert "waited more than 0.01 s for broadcast" in capsys.readouterr().err
