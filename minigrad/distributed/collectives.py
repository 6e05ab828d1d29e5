"""The collectives on Tensors: every rank calls the same one, in the same order, with tensors of
the same dtype, and each gets the combined result in place.

    all_reduce(t, op)           every rank's t combined element by element (SUM, AVG, MAX, ...)
    broadcast(t, src)           rank src's t copied into every rank's t
    all_gather(list, t)         every rank's t, in rank order, into list (sizes may differ per rank)
    barrier()                   returns once every rank has reached it

With async_op=True they return a Work at once (call .wait() before reading the tensor); otherwise
they return None when the result is there.
"""
from __future__ import annotations

from ..tensor import Tensor
from .process_group import ReduceOp, _default_group


def all_reduce(tensor: Tensor, op: ReduceOp = ReduceOp.SUM, group=None, async_op: bool = False):
    carrier = _carrier_for(tensor, "all_reduce")
    if not isinstance(op, ReduceOp):
        raise TypeError(f"all_reduce: op must be a ReduceOp (SUM, PRODUCT, MIN, MAX, AVG), got {op!r}")
    if op is ReduceOp.AVG and tensor.dtype.kind != "f":
        raise TypeError(f"all_reduce: ReduceOp.AVG needs a floating-point tensor, got {tensor.dtype}")
    tensor._bump_version()
    return _finish(carrier.all_reduce(tensor.data, op), async_op)


def broadcast(tensor: Tensor, src: int, group=None, async_op: bool = False):
    carrier = _carrier_for(tensor, "broadcast")
    size = _default_group().size
    if not 0 <= src < size:
        raise ValueError(f"broadcast: src={src} is not a rank (world size {size})")
    tensor._bump_version()
    return _finish(carrier.broadcast(tensor.data, src), async_op)


def all_gather(tensor_list: list, tensor: Tensor, group=None, async_op: bool = False):
    """tensor_list[r] receives rank r's `tensor`; every rank passes the same list of shapes."""
    carrier = _carrier_for(tensor, "all_gather")
    group_ = _default_group()
    if len(tensor_list) != group_.size:
        raise ValueError(f"all_gather: tensor_list has {len(tensor_list)} tensors for a world of {group_.size}")
    for r, out in enumerate(tensor_list):
        if not isinstance(out, Tensor) or out.dtype != tensor.dtype or out.device != tensor.device:
            raise TypeError(f"all_gather: tensor_list[{r}] must be a {tensor.dtype} tensor on {tensor.device}")
    mine = tensor_list[group_.rank]
    if mine.numel() != tensor.numel():
        raise ValueError(f"all_gather: tensor_list[{group_.rank}] (this rank's) has shape {tuple(mine.shape)} "
                         f"but the tensor sent has shape {tuple(tensor.shape)}")
    total = sum(out.numel() for out in tensor_list)
    gathered = tensor.xp.empty(total, dtype=tensor.dtype)   # on the tensor's device
    for out in tensor_list:
        out._bump_version()
    return _finish(carrier.all_gather([out.data for out in tensor_list], tensor.data, gathered), async_op)


def barrier(group=None, async_op: bool = False, device_ids=None):
    group = _default_group()
    return _finish((group.device_carrier or group.host_carrier).barrier(), async_op)


def _carrier_for(tensor, what: str):
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{what}: expected a minigrad Tensor, got {type(tensor).__name__}")
    group = _default_group()
    if tensor.device.type == "cpu":
        return group.host_carrier
    if tensor.device.type == "cuda" and group.device_carrier is not None:
        return group.device_carrier
    raise ValueError(f"{what}: the '{group.name}' process group cannot carry a tensor on {tensor.device} "
                     "(CUDA tensors need init_process_group('nccl'))")


def _finish(work, async_op: bool):
    if async_op:
        return work
    work.wait()
    return None
