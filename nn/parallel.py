"""DistributedDataParallel: N processes train one model, each on its own shard of every batch.

    dist.init_process_group("mpi")                 # under mpirun -n N
    ddp = nn.parallel.DistributedDataParallel(model)
    loss = loss_fn(ddp(x_shard), y_shard)          # this rank's local mean
    loss.backward()                                # every rank now holds the same, averaged, gradients
    optimizer.step()                               # ... so every rank makes the same update

What it does, and why:
- At wrap, rank 0's parameters and buffers are broadcast, so every rank starts from the same model.
- The average over ranks of each rank's mean-loss gradient is the gradient of the mean over all
  ranks' examples when the shards are equally large (torch's rule). The averages are made by
  all-reduce, in buckets of about bucket_cap_mb MB of gradients, the parameters taken in reverse
  order (roughly the order backward finishes them). A post-accumulate-grad hook on every parameter
  copies its gradient into its bucket; the bucket's all-reduce starts as soon as its last gradient
  is in, while backward computes the earlier layers, and the last hook of the pass waits for every
  bucket and copies the averages back into the .grad's.
- Inside `no_sync()` the hooks do nothing and gradients accumulate locally; the first backward
  after it averages the accumulated sum.
- State dict keys get a "module." prefix, as torch's; the wrapped model is `.module`.
"""
from __future__ import annotations

import contextlib

import minigrad
import minigrad.distributed as dist

from .module import Module


class DistributedDataParallel(Module):
    def __init__(self, module: Module, device_ids=None, output_device=None, dim: int = 0,
                 broadcast_buffers: bool = True, init_sync: bool = True, process_group=None,
                 bucket_cap_mb: float | None = None, find_unused_parameters: bool = False,
                 check_reduction: bool = False, gradient_as_bucket_view: bool = False, static_graph: bool = False):
        super().__init__()
        if not dist.is_initialized():
            raise RuntimeError("DistributedDataParallel: call minigrad.distributed.init_process_group() first")
        if process_group is not None:
            raise ValueError("DistributedDataParallel: only the default process group is supported")
        if find_unused_parameters:
            raise NotImplementedError("DistributedDataParallel: find_unused_parameters=True is not supported; "
                                      "every parameter that requires grad must take part in the loss")
        if dim != 0:
            raise ValueError(f"DistributedDataParallel: dim={dim}; the batch must be split along dim 0")
        self.module = module
        self.broadcast_buffers = broadcast_buffers
        self.bucket_cap_mb = 25.0 if bucket_cap_mb is None else float(bucket_cap_mb)
        if not self.bucket_cap_mb > 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be > 0, got {bucket_cap_mb}")
        self.require_backward_grad_sync = True     # False inside no_sync()
        self._sync_this_backward = True            # decided by the forward, as in torch
        params = [p for p in module.parameters() if p.requires_grad]
        if init_sync:
            for tensor in params + list(module.buffers()):
                with minigrad.no_grad():
                    dist.broadcast(tensor, src=0)
        self._buckets = _fill_buckets(params, self.bucket_cap_mb * 2 ** 20)
        self._slot = {id(p): (bucket, offset) for bucket in self._buckets for p, offset in zip(bucket.params,
                                                                                             bucket.offsets)}
        self._launched = []                        # buckets whose all-reduce is in flight, in launch order
        self._hook_handles = [p.register_post_accumulate_grad_hook(self._gradient_ready) for p in params]

    def forward(self, *args, **kwargs):
        unfinished = [b for b in self._buckets if 0 < b.waiting < len(b.params)] or self._launched
        if unfinished:
            raise RuntimeError("DistributedDataParallel: the last backward did not give every parameter a gradient, "
                               "so its gradients were not averaged over ranks (every parameter that requires grad "
                               "must take part in the loss)")
        self._sync_this_backward = self.require_backward_grad_sync
        # Buffers are synced for training passes only, as torch's DDP does: a forward under no_grad
        # (evaluation, maybe on rank 0 alone) makes no collective call, so no rank waits for it.
        if self.broadcast_buffers and minigrad.is_grad_enabled():
            with minigrad.no_grad():
                for buffer in self.module.buffers():
                    dist.broadcast(buffer, src=0)
        return self.module(*args, **kwargs)

    @contextlib.contextmanager
    def no_sync(self):
        """Backward passes in this block only accumulate gradients locally (gradient accumulation);
        the first backward after it averages the accumulated gradients over ranks."""
        before, self.require_backward_grad_sync = self.require_backward_grad_sync, False
        try:
            yield
        finally:
            self.require_backward_grad_sync = before

    def bucket_sizes(self) -> list[int]:
        """How many parameters each bucket holds, in all-reduce order."""
        return [len(b.params) for b in self._buckets]

    # -- during backward ----------------------------------------------------------------------
    def _gradient_ready(self, param):
        if not self._sync_this_backward:
            return
        bucket, offset = self._slot[id(param)]
        bucket.flat.data[offset:offset + param.numel()] = param.grad.data.reshape(-1)
        bucket.waiting -= 1
        if bucket.waiting == 0:        # the bucket is full: send it while backward goes on
            bucket.work = dist.all_reduce(bucket.flat, op=dist.ReduceOp.AVG, async_op=True)
            self._launched.append(bucket)
            if len(self._launched) == len(self._buckets):
                self._finish_averaging()
        else:
            for in_flight in self._launched:   # asking lets MPI move the buckets already sent
                in_flight.work.is_completed()

    def _finish_averaging(self):
        for bucket in self._launched:
            bucket.work.wait()
            for param, offset in zip(bucket.params, bucket.offsets):
                param.grad.data[...] = bucket.flat.data[offset:offset + param.numel()].reshape(param.grad.shape)
            bucket.work, bucket.waiting = None, len(bucket.params)
        self._launched = []


class _Bucket:
    """Parameters whose gradients travel together, in one flat tensor."""

    def __init__(self, params):
        self.params = params
        self.offsets = [sum(p.numel() for p in params[:i]) for i in range(len(params))]
        first = params[0]
        self.flat = minigrad.zeros(sum(p.numel() for p in params), dtype=first.dtype, device=first.device)
        self.waiting, self.work = len(params), None


def _fill_buckets(params, cap_bytes: float) -> list[_Bucket]:
    """Parameters in reverse order (backward finishes the last layers first), a new bucket whenever
    the next one would pass cap_bytes or has another dtype or device."""
    buckets, current, size = [], [], 0
    for p in reversed(params):
        nbytes = p.numel() * p.dtype.itemsize
        if current and (size + nbytes > cap_bytes or p.dtype != current[0].dtype or p.device != current[0].device):
            buckets.append(_Bucket(current))
            current, size = [], 0
        current.append(p)
        size += nbytes
    if current:
        buckets.append(_Bucket(current))
    return buckets
