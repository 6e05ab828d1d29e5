"""Collectives over NCCL between NVIDIA GPUs, through CuPy's bindings (cupy.cuda.nccl).

NCCL reads and writes device memory directly (NVLink, PCIe, InfiniBand with GPUDirect): the data
never passes through the host, and the host does not wait for it either. Every collective runs on a
stream of its own, after the kernels already queued on the current stream (an event), so it can
overlap the kernels queued after it (the rest of backward); a Work's wait() makes the current stream
wait for the collective's end (another event) and returns at once.

NCCL needs one id shared by all ranks before it can connect them: rank 0 asks NCCL for it and MPI
broadcasts its 128 bytes, once. Tensors in host memory still go through MPI (the MPI carrier).
"""
from __future__ import annotations

from ..backend import cupy_backend
from .process_group import ReduceOp, Work


class NCCLCarrier:
    def __init__(self, comm, MPI, timeout: float, device_id=None):
        self.nccl = cupy_backend.nccl_module()
        if self.nccl is None or not cupy_backend.cuda_is_available():
            raise RuntimeError("init_process_group('nccl'): needs CuPy with NCCL and a GPU "
                               "(pip install \".[gpu]\"); use backend='mpi' for CPU tensors")
        self.cuda = cupy_backend.cuda_runtime()
        self.mpi_comm, self.timeout, self.asked_device = comm, timeout, device_id
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.communicator = None
        self.device_id = None

    def connect(self, local_rank: int):
        """Pick this rank's GPU, share NCCL's unique id over MPI, make the NCCL communicator."""
        count = self.cuda.runtime.getDeviceCount()
        self.device_id = int(self.asked_device) if self.asked_device is not None else local_rank % count
        self.cuda.Device(self.device_id).use()
        unique_id = bytearray(128)
        if self.rank == 0:
            unique_id[:] = bytes(value & 0xFF for value in self.nccl.get_unique_id())
        self.mpi_comm.Bcast(unique_id, root=0)            # a bytes buffer: no pickling
        signed = tuple(value - 256 if value > 127 else value for value in unique_id)   # NCCL's char[128]
        self.communicator = self.nccl.NcclCommunicator(self.size, signed, self.rank)
        self.stream = self.cuda.Stream(non_blocking=True)      # the collectives' own stream

    def _dtype(self, array):
        code = getattr(self.nccl, f"NCCL_{array.dtype.name.upper()}", None)
        if code is None:
            raise TypeError(f"NCCL cannot carry {array.dtype} tensors")
        return code

    def _start(self) -> int:
        """The collectives' stream, made to wait for what the current stream has queued so far."""
        ready = self.cuda.Event(disable_timing=True)
        ready.record(self.cuda.get_current_stream())
        self.stream.wait_event(ready)
        return self.stream.ptr

    def _queued(self, what, finish=None) -> Work:
        """A Work for what was just queued on the collectives' stream."""
        done = self.cuda.Event(disable_timing=True)
        done.record(self.stream)

        def wait_then_finish():
            self.cuda.get_current_stream().wait_event(done)   # the GPU waits, not the host
            if finish is not None:
                finish()                                       # queued on the current stream, after the wait
        return Work(lambda: done.done, wait_then_finish, what, self.timeout, host_waits=False)

    def _contiguous(self, array, what):
        if not array.flags.c_contiguous:
            raise ValueError(f"{what}: NCCL needs a contiguous tensor (call .contiguous() first)")
        return array

    def all_reduce(self, array, op: ReduceOp) -> Work:
        array = self._contiguous(array, "all_reduce")
        stream = self._start()
        native_avg = op is ReduceOp.AVG and hasattr(self.nccl, "NCCL_AVG")
        nccl_op = {ReduceOp.SUM: self.nccl.NCCL_SUM, ReduceOp.PRODUCT: self.nccl.NCCL_PROD,
                   ReduceOp.MIN: self.nccl.NCCL_MIN, ReduceOp.MAX: self.nccl.NCCL_MAX,
                   ReduceOp.AVG: getattr(self.nccl, "NCCL_AVG", self.nccl.NCCL_SUM)}[op]
        self.communicator.allReduce(array.data.ptr, array.data.ptr, array.size, self._dtype(array), nccl_op, stream)
        size = self.size

        def divide():                                   # NCCL before 2.10: the sum, divided on the GPU
            array[...] /= size
        return self._queued("all_reduce", divide if op is ReduceOp.AVG and not native_avg else None)

    def broadcast(self, array, src: int) -> Work:
        array = self._contiguous(array, "broadcast")
        self.communicator.bcast(array.data.ptr, array.size, self._dtype(array), src, self._start())
        return self._queued("broadcast")

    def all_gather(self, outputs, array, gathered) -> Work:
        """Sizes may differ per rank: one broadcast from every rank into its part of `gathered`, in one
        NCCL group (so they run together)."""
        array = self._contiguous(array, "all_gather")
        stream = self._start()
        counts = [out.size for out in outputs]
        offsets = [sum(counts[:i]) for i in range(len(counts))]
        dtype = self._dtype(array)
        self.nccl.groupStart()
        for root, (start, count) in enumerate(zip(offsets, counts)):
            part = gathered[start:start + count]
            send = array.data.ptr if root == self.rank else part.data.ptr
            self.communicator.broadcast(send, part.data.ptr, count, dtype, root, stream)
        self.nccl.groupEnd()

        def finish():
            for out, start, count in zip(outputs, offsets, counts):
                out[...] = gathered[start:start + count].reshape(out.shape)
        return self._queued("all_gather", finish)

    def barrier(self) -> Work:
        self.cuda.get_current_stream().synchronize()      # what is queued first, then MPI's barrier
        self.stream.synchronize()
        request = self.mpi_comm.Ibarrier()
        return Work(request.Test, None, "barrier", self.timeout)

    def close(self):
        if self.communicator is not None:
            self.communicator.destroy()
            self.communicator = None
