"""minigrad.distributed: the collectives of data-parallel training, with torch.distributed's names.

    import minigrad.distributed as dist
    dist.init_process_group("mpi")           # under `mpirun -n N python script.py`
    dist.get_rank(), dist.get_world_size()    # this process's number, how many there are
    dist.all_reduce(grad, op=dist.ReduceOp.AVG)   # in place: every rank ends with the average

Nothing here moves bytes itself: the field's communication libraries do. Rank and world size
come from the MPI launcher; the collectives run through mpi4py on the arrays' own buffers (never
pickled), or, with backend="nccl" on NVIDIA GPUs, through NCCL (CuPy's `cupy.cuda.nccl`) on device
memory, with MPI used once to hand every rank NCCL's unique id.

Importing minigrad does not import mpi4py: only init_process_group does. See docs/distributed.md.
"""
from .collectives import all_gather, all_reduce, barrier, broadcast
from .process_group import (ReduceOp, Work, destroy_process_group, get_backend, get_node_local_rank, get_rank,
                            get_world_size, init_process_group, is_available, is_initialized, is_mpi_available,
                            is_nccl_available)

__all__ = ["ReduceOp", "Work", "all_gather", "all_reduce", "barrier", "broadcast", "destroy_process_group",
           "get_backend", "get_node_local_rank", "get_rank", "get_world_size", "init_process_group", "is_available",
           "is_initialized", "is_mpi_available", "is_nccl_available"]
