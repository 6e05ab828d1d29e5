"""Run under `mpirun -n 2`: rank 1 never joins the all-reduce; rank 0 must give up after the
process group's timeout (2 s here) and end both ranks instead of waiting forever."""
import time

import minigrad
import minigrad.distributed as dist

dist.init_process_group("mpi", timeout=2)
if dist.get_rank() == 1:
    time.sleep(120)               # a rank that hangs (or is stuck in a long computation)
else:
    dist.all_reduce(minigrad.ones(3))
print("not reached: the all-reduce cannot finish", flush=True)
