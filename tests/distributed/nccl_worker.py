"""Run under `mpirun -n N` with N GPUs: NCCL collectives on CUDA tensors against NumPy."""
import numpy as np

import minigrad
import minigrad.distributed as dist

dist.init_process_group("nccl")
rank, size = dist.get_rank(), dist.get_world_size()
device = f"cuda:{dist.get_node_local_rank()}"
rng = np.random.default_rng(0)
data = [rng.standard_normal(1001).astype(np.float32) for _ in range(size)]
for op, expected in ((dist.ReduceOp.SUM, np.sum), (dist.ReduceOp.AVG, np.mean), (dist.ReduceOp.MAX, np.max)):
    t = minigrad.tensor(data[rank], device=device)
    dist.all_reduce(t, op=op)
    np.testing.assert_allclose(t.numpy(), expected(np.stack(data), axis=0), rtol=1e-6)
t = minigrad.tensor(data[rank], device=device)
dist.broadcast(t, src=0)
np.testing.assert_array_equal(t.numpy(), data[0])
outputs = [minigrad.zeros(3 + r, device=device) for r in range(size)]
dist.all_gather(outputs, minigrad.tensor(np.full(3 + rank, float(rank), dtype=np.float32), device=device))
for r, out in enumerate(outputs):
    np.testing.assert_array_equal(out.numpy(), np.full(3 + r, float(r)))
host = minigrad.ones(2)                  # host tensors still go through MPI
dist.all_reduce(host)
np.testing.assert_array_equal(host.numpy(), np.full(2, float(size)))
dist.barrier()
dist.destroy_process_group()
if rank == 0:
    print(f"nccl ok on {size} ranks")
