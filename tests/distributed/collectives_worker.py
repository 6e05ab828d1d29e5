"""Run under `mpirun -n N`: every collective of minigrad.distributed against NumPy on random data.

Every rank draws every rank's data from one seed, so each can compute the expected result itself.
Exits non-zero (an AssertionError) on the first mismatch; prints "collectives ok" on rank 0.
"""
import numpy as np

import minigrad
import minigrad.distributed as dist

dist.init_process_group("mpi")
rank, size = dist.get_rank(), dist.get_world_size()
assert dist.is_initialized() and dist.get_backend() == "mpi" and 0 <= rank < size


def every_rank(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(dtype) for _ in range(size)]


expected_ops = {dist.ReduceOp.SUM: lambda xs: np.sum(xs, axis=0), dist.ReduceOp.AVG: lambda xs: np.mean(xs, axis=0),
                dist.ReduceOp.MAX: lambda xs: np.max(xs, axis=0), dist.ReduceOp.MIN: lambda xs: np.min(xs, axis=0),
                dist.ReduceOp.PRODUCT: lambda xs: np.prod(xs, axis=0)}
seed = 0
for dtype, tolerance in ((np.float32, 1e-6), (np.float64, 1e-14)):
    for shape in [(1,), (7,), (3, 5), (1001,), (2, 3, 129), (0,), (100003,)]:   # uneven, odd and empty sizes
        for op, expected in expected_ops.items():
            seed += 1
            data = every_rank(shape, dtype, seed)
            t = minigrad.tensor(data[rank])
            assert t.dtype == dtype
            dist.all_reduce(t, op=op)
            assert t.dtype == dtype and t.shape == shape
            np.testing.assert_allclose(t.numpy(), expected(np.stack(data)).astype(dtype), rtol=tolerance, atol=0)

# a strided view is reduced in place through a packed copy
data = every_rank((4, 6), np.float64, 99)
base = minigrad.tensor(data[rank])
view = base[:, ::2]
dist.all_reduce(view, op=dist.ReduceOp.SUM)
total = np.stack(data).sum(axis=0)
np.testing.assert_allclose(base.numpy()[:, ::2], total[:, ::2], rtol=1e-15)
np.testing.assert_array_equal(base.numpy()[:, 1::2], data[rank][:, 1::2])

# integers sum exactly; AVG of integers is refused with a clear error
t = minigrad.tensor(np.arange(5, dtype=np.int64) * (rank + 1))
dist.all_reduce(t)
np.testing.assert_array_equal(t.numpy(), np.arange(5) * sum(range(1, size + 1)))
try:
    dist.all_reduce(t, op=dist.ReduceOp.AVG)
    raise AssertionError("AVG of an int64 tensor was accepted")
except TypeError as error:
    assert "floating-point" in str(error)

# broadcast from every source rank
for src in range(size):
    for dtype in (np.float32, np.float64):
        data = every_rank((13, 3), dtype, 200 + src)
        t = minigrad.tensor(data[rank])
        dist.broadcast(t, src=src)
        np.testing.assert_array_equal(t.numpy(), data[src])

# all_gather with a different size on every rank
for dtype in (np.float32, np.float64):
    sizes = [3 + 5 * r for r in range(size)]
    rng = np.random.default_rng(300)
    data = [rng.standard_normal(n).astype(dtype) for n in sizes]
    outputs = [minigrad.zeros(n, dtype=minigrad.float32 if dtype == np.float32 else minigrad.float64) for n in sizes]
    dist.all_gather(outputs, minigrad.tensor(data[rank]))
    for out, want in zip(outputs, data):
        np.testing.assert_array_equal(out.numpy(), want)

# async_op: a Work to wait on; the result is there after wait()
data = every_rank((50,), np.float64, 400)
t = minigrad.tensor(data[rank])
work = dist.all_reduce(t, op=dist.ReduceOp.SUM, async_op=True)
assert work.wait() and work.is_completed()
np.testing.assert_allclose(t.numpy(), np.sum(data, axis=0), rtol=1e-15)

dist.barrier()
dist.destroy_process_group()
assert not dist.is_initialized() and dist.get_rank() == -1
if rank == 0:
    print(f"collectives ok on {size} ranks")
