"""Collectives over MPI (mpi4py) on arrays in host memory.

mpi4py's upper-case methods (Iallreduce, Ibcast, ...) hand MPI the array's own buffer: no copy,
no pickling. Every collective is started non-blocking and returned as a Work, so that the
gradient buckets of DistributedDataParallel can travel while backward goes on, and so that a
wait can give up after the timeout instead of hanging when another rank has died.
"""
from __future__ import annotations

from .process_group import ReduceOp, Work


class MPICarrier:
    def __init__(self, comm, MPI, timeout: float):
        self.comm, self.MPI, self.timeout = comm, MPI, timeout
        self.size = comm.Get_size()
        self.ops = {ReduceOp.SUM: MPI.SUM, ReduceOp.AVG: MPI.SUM, ReduceOp.PRODUCT: MPI.PROD,
                    ReduceOp.MIN: MPI.MIN, ReduceOp.MAX: MPI.MAX}

    def _contiguous(self, array):
        """MPI reads a buffer as one block of memory: a strided view goes through a packed copy."""
        if array.flags.c_contiguous:
            return array, None
        packed = array.copy()
        return packed, packed

    def _work(self, request, what, finish=None):
        return Work(request.Test, finish, what, self.timeout)

    def all_reduce(self, array, op: ReduceOp) -> Work:
        buffer, packed = self._contiguous(array)
        request = self.comm.Iallreduce(self.MPI.IN_PLACE, buffer, self.ops[op])
        size = self.size

        def finish():
            if op is ReduceOp.AVG:     # MPI has no average: the sum, divided by the number of ranks
                buffer[...] /= size
            if packed is not None:
                array[...] = packed
        return self._work(request, "all_reduce", finish)

    def broadcast(self, array, src: int) -> Work:
        buffer, packed = self._contiguous(array)
        request = self.comm.Ibcast(buffer, root=src)
        finish = None if packed is None else (lambda: array.__setitem__(Ellipsis, packed))
        return self._work(request, "broadcast", finish)

    def all_gather(self, outputs, array, gathered) -> Work:
        """Every rank's `array` into `outputs` (one array per rank, sizes may differ), through
        `gathered`, a flat array as long as all of them together."""
        send, _ = self._contiguous(array)
        counts = [out.size for out in outputs]
        offsets = [sum(counts[:i]) for i in range(len(counts))]
        request = self.comm.Iallgatherv(send, [gathered, (counts, offsets)])

        def finish():
            for out, start, count in zip(outputs, offsets, counts):
                out[...] = gathered[start:start + count].reshape(out.shape)
        return self._work(request, "all_gather", finish)

    def barrier(self) -> Work:
        return self._work(self.comm.Ibarrier(), "barrier")

    def close(self):
        pass
