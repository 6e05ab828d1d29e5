"""Run under `mpirun -n 2`: K steps of 2 ranks x B/2 pairs give the parameters of K steps of one
process x B pairs (float64, dropout 0) to 1e-10: with one bucket, with many, and with no_sync
accumulation. Every rank also computes the one-process reference itself.
"""
import numpy as np

import minigrad
import minigrad.distributed as dist
import nn
from nn.parallel import DistributedDataParallel
from transformer.data import make_batches
from transformer.distributed_training import Ranks
from transformer.losses import token_losses
from transformer.model import Transformer

dist.init_process_group("mpi")
rank, size = dist.get_rank(), dist.get_world_size()
minigrad.set_default_dtype(minigrad.float64)
PAD, BOS, EOS, STEPS, BATCH = 0, 1, 2, 4, 8


def batches():
    """STEPS batches of BATCH pairs whose targets have very different lengths (uneven token counts)."""
    rng = np.random.default_rng(5)
    src = [list(rng.integers(3, 20, size=rng.integers(2, 9))) for _ in range(STEPS * BATCH)]
    tgt = [list(rng.integers(3, 20, size=1 + (i % BATCH))) for i in range(STEPS * BATCH)]
    return make_batches(src, tgt, BATCH, PAD, BOS, EOS, shuffle=False)


def new_model(seed):
    minigrad.manual_seed(seed)
    return Transformer(src_vocab_size=20, tgt_vocab_size=20, d_model=16, n_heads=2, d_ff=32, n_encoder_layers=1,
                       n_decoder_layers=1, dropout=0.0, pad_id=PAD).double()


def step_loss(model, batch):
    logits = model(minigrad.tensor(batch.src), minigrad.tensor(batch.tgt_in))
    return token_losses(logits, minigrad.tensor(batch.tgt_out), PAD, 0.1)


def one_process():
    model = new_model(0)
    optimizer = minigrad.optim.Adam(model.parameters(), lr=1e-2)
    for batch in batches():
        optimizer.zero_grad()
        step_loss(model, batch)[0].backward()
        optimizer.step()
    return {k: v.numpy() for k, v in model.state_dict().items()}


def ranks_run(bucket_cap_mb, accumulate):
    model = new_model(0 if rank == 0 else 100 + rank)   # others start elsewhere: the wrap broadcasts rank 0's
    ddp = DistributedDataParallel(model, bucket_cap_mb=bucket_cap_mb)
    ranks = Ranks(rank, size)
    optimizer = minigrad.optim.Adam(ddp.parameters(), lr=1e-2)
    for batch in batches():
        shard = ranks.shard(batch, PAD)
        optimizer.zero_grad()
        if not accumulate:
            loss, nll, correct = step_loss(ddp, shard)
            ranks.backward(loss, nll, correct, shard.n_tokens)
        else:   # two micro-batches: the first only accumulates (no_sync), the second averages the sum
            halves = [Ranks(i, 2).shard(shard, PAD) for i in range(2)]
            total = int(ranks._summed([float(shard.n_tokens)])[0])
            for i, half in enumerate(halves):
                if i == 0:
                    with ddp.no_sync():
                        (step_loss(ddp, half)[0] * (half.n_tokens * size / total)).backward()
                else:
                    (step_loss(ddp, half)[0] * (half.n_tokens * size / total)).backward()
        optimizer.step()
    return ddp, {k[len("module."):]: v.numpy() for k, v in ddp.state_dict().items()}


reference = one_process()
for cap, accumulate in ((25.0, False), (0.001, False), (0.02, False), (25.0, True), (0.001, True)):
    ddp, result = ranks_run(cap, accumulate)
    buckets = ddp.bucket_sizes()
    assert sum(buckets) == len(list(ddp.module.parameters()))
    assert (len(buckets) == 1) == (cap == 25.0), buckets
    assert set(result) == set(reference), "state_dict keys are module.<the model's>"
    worst = max(float(np.max(np.abs(result[k] - reference[k]))) for k in reference)
    assert worst < 1e-10, f"bucket_cap_mb={cap} accumulate={accumulate}: differs from one process by {worst:.3g}"
    gathered = [minigrad.zeros(1, dtype=minigrad.float64) for _ in range(size)]
    dist.all_gather(gathered, minigrad.tensor([float(sum(np.sum(v) for v in result.values()))]))
    assert gathered[0].item() == gathered[1].item(), "ranks hold different models"
    if rank == 0:
        print(f"bucket_cap_mb={cap}: {len(buckets)} bucket(s), no_sync={accumulate}: max |difference| {worst:.2e}")


class HalfUsed(nn.Module):
    def __init__(self):
        super().__init__()
        self.used, self.unused = nn.Linear(3, 3), nn.Linear(3, 3)

    def forward(self, x):
        return self.used(x)


# a parameter left out of the loss: its bucket never completes, and the next forward says so
ddp = DistributedDataParallel(HalfUsed(), bucket_cap_mb=1e-5)      # one bucket per parameter
ddp(minigrad.ones(2, 3)).sum().backward()
try:
    ddp(minigrad.ones(2, 3))
    raise AssertionError("a forward after an incomplete reduction was allowed")
except RuntimeError as error:
    assert "did not give every parameter a gradient" in str(error), error

# no_sync is decided by the forward, as in torch: a forward inside it gives a local-only backward
ddp = DistributedDataParallel(nn.Linear(3, 1))
with ddp.no_sync():
    out = ddp(minigrad.full((2, 3), float(rank + 1)))
out.sum().backward()
np.testing.assert_allclose(ddp.module.weight.grad.numpy(), np.full((1, 3), 2.0 * (rank + 1)))   # not averaged
ddp.module.weight.grad = None
ddp(minigrad.full((2, 3), float(rank + 1))).sum().backward()
np.testing.assert_allclose(ddp.module.weight.grad.numpy(), np.full((1, 3), 2.0 * (size + 1) / 2))   # averaged
if rank == 0:
    print("ddp ok")
