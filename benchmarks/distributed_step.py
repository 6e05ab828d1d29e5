"""Data-parallel training speed: tokens/s of 1 and 2 processes (one BLAS thread each), the all-reduce
time per step and its share, scaling efficiency, and whether overlapping the buckets pays.

    python benchmarks/distributed_step.py                        # tiny, small, base; launches mpirun itself
    python benchmarks/distributed_step.py --config tiny --steps 10
    python benchmarks/distributed_step.py --on-paper             # the 8- and 64-GPU estimates of docs/distributed.md

Each rank trains on its own batch of the config's size (--batch-size is per rank, as in torch), so 2
processes train on twice the tokens per step; scaling efficiency = (2-process tokens/s) / (2 x 1-process
tokens/s). Modes for 2 processes: "end" = one bucket, whose all-reduce can only start when backward
is over (no overlap); "25MB" = torch's default buckets; "1MB" = small buckets that start early.
The all-reduce time is one blocking all-reduce of all gradients, timed on its own; the wait at the end
of backward is the part of it that overlapping did not hide (the last hook's wait for every bucket).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from transformer_step import CONFIGS, PAD, make_batch  # noqa: E402

MODES = {"end": 1e6, "25MB": 25.0, "1MB": 1.0}


def worker(config_name, steps, mode):
    """One rank's measurement (under mpirun); rank 0 prints one JSON line."""
    import minigrad
    import minigrad.distributed as dist
    import minigrad.functional as F
    from nn.parallel import DistributedDataParallel
    from transformer.model import Transformer

    minigrad.tune_cpu()
    dist.init_process_group("mpi")
    rank, size = dist.get_rank(), dist.get_world_size()
    d, h, ff, layers, batch, length, vocab = CONFIGS[config_name]
    src, tgt_in, tgt_out = (minigrad.tensor(a) for a in make_batch(CONFIGS[config_name], seed=rank))
    tokens = int((tgt_out.numpy() != PAD).sum())
    minigrad.manual_seed(0)
    model = Transformer(vocab, vocab, d_model=d, n_heads=h, d_ff=ff, n_encoder_layers=layers,
                        n_decoder_layers=layers, dropout=0.1, pad_id=PAD, max_len=length + 2)
    forward = DistributedDataParallel(model, bucket_cap_mb=MODES[mode], broadcast_buffers=False) if size > 1 else model
    optimizer = minigrad.optim.Adam(model.parameters(), lr=1e-4)
    waits = []     # the wait at the end of backward: the all-reduce time that overlap did not hide
    if size > 1:
        finish = forward._finish_averaging

        def timed_finish():
            started = time.perf_counter()
            finish()
            waits.append(time.perf_counter() - started)
        forward._finish_averaging = timed_finish

    def step():
        logits = forward(src, tgt_in)
        loss = F.cross_entropy(logits.reshape(-1, vocab), tgt_out.reshape(-1), ignore_index=PAD)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        loss.item()

    for _ in range(2):
        step()
    times = []
    for _ in range(steps):
        dist.barrier()
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    total_tokens = [minigrad.zeros(1, dtype=minigrad.int64) for _ in range(size)]
    dist.all_gather(total_tokens, minigrad.tensor([tokens], dtype=minigrad.int64))
    n_params = sum(p.numel() for p in model.parameters())
    flat = minigrad.zeros(n_params)
    reduce_times = []
    for _ in range(5):
        dist.barrier()
        started = time.perf_counter()
        dist.all_reduce(flat, op=dist.ReduceOp.AVG)
        reduce_times.append(time.perf_counter() - started)
    step_s = statistics.median(times)
    if rank == 0:
        print(json.dumps({"config": config_name, "ranks": size, "mode": mode if size > 1 else "-",
                          "params": n_params, "step_ms": 1e3 * step_s,
                          "tokens_per_s": sum(int(t.item()) for t in total_tokens) / step_s,
                          "allreduce_ms": 1e3 * statistics.median(reduce_times) if size > 1 else 0.0,
                          "exposed_ms": 1e3 * statistics.median(waits[-steps:]) if waits else 0.0,
                          "buckets": len(forward.bucket_sizes()) if size > 1 else 0}), flush=True)


def launch(config_name, steps, ranks, mode):
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    import mpi_launch

    env = mpi_launch.environment({"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"})
    result = subprocess.run(mpi_launch.mpirun_command(ranks, os.path.abspath(__file__), "--worker", config_name,
                                                      "--steps", str(steps), "--mode", mode),
                            capture_output=True, text=True, env=env, cwd=ROOT)
    if result.returncode:
        sys.exit(f"{config_name} on {ranks} ranks failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# -- on paper: 8 and 64 GPUs -----------------------------------------------------------------------
# (GPUs, link, NCCL all-reduce bus bandwidth per GPU for large messages, what nccl-tests calls busbw).
# 64 GPUs are 8 nodes of 8: the ring runs at the speed of the links between nodes.
SCENARIOS = [(8, "8 GPUs, NVLink in one node, 200 GB/s", 200e9),
             (64, "64 GPUs, InfiniBand 200 Gb/s per GPU, 25 GB/s", 25e9),
             (64, "64 GPUs, 100 Gb/s Ethernet per node, 1.2 GB/s per GPU", 1.2e9)]
GPU_FLOPS = 15e12        # float32 (minigrad's default) matmuls on an A100, effective
TOKENS_PER_GPU = 2048    # the base config's batch on every GPU: 64 pairs x 32 positions
STEP_FLOOR_S = 0.02      # a step of a small model is launch-bound: assumed 20 ms of Python and kernel launches


def ring_bytes(params: int, gpus: int, bytes_per_value: int = 4) -> float:
    """Bytes each GPU sends (and receives) in one ring all-reduce of all gradients."""
    return 2 * (gpus - 1) / gpus * params * bytes_per_value


def on_paper():
    sizes = {"tiny": 272_072, "small": 1_773_544, "base": 11_681_600, "100M": 100_000_000, "1B": 1_000_000_000}
    print("| model | params | MB per GPU per step, 8 GPUs | 64 GPUs | compute ms (6 x params x tokens / FLOP/s) | "
          + " | ".join(f"all-reduce ms: {name}" for _, name, _ in SCENARIOS) + " |")
    print("|---" * (5 + len(SCENARIOS)) + "|")
    for name, params in sizes.items():
        compute_ms = 1e3 * 6 * params * TOKENS_PER_GPU / GPU_FLOPS
        print(f"| {name} | {params:,} | {ring_bytes(params, 8) / 1e6:.1f} | {ring_bytes(params, 64) / 1e6:.1f} | "
              f"{compute_ms:.2f} | " + " | ".join(f"{1e3 * ring_bytes(params, gpus) / bw:.2f}"
                                                  for gpus, _, bw in SCENARIOS) + " |")
    print()
    for gpus, name, bw in SCENARIOS:
        ratio = (ring_bytes(1, gpus) / bw) / (6 * TOKENS_PER_GPU / GPU_FLOPS)
        crossover_tokens = ring_bytes(1, gpus) * GPU_FLOPS / (6 * bw)
        above_floor = STEP_FLOOR_S * bw / ring_bytes(1, gpus)
        print(f"{name}: all-reduce / compute = {ratio:.2f} at any model size; communication exceeds compute below "
              f"{crossover_tokens:,.0f} tokens per GPU per step; it exceeds a {1e3 * STEP_FLOOR_S:.0f} ms "
              f"launch-bound step from {above_floor / 1e6:,.1f}M parameters")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", choices=list(CONFIGS), action="append", help="default: all three")
    parser.add_argument("--steps", type=int, help="timed steps (default: 20 tiny, 10 small, 5 base)")
    parser.add_argument("--on-paper", action="store_true", help="print the 8- and 64-GPU estimates and stop")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="25MB", choices=list(MODES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.steps, args.mode)
    if args.on_paper:
        return on_paper()
    print(f"load before: {os.getloadavg()}")
    print("| config | params | processes | buckets | step ms | tokens/s | all-reduce ms (share of step) | "
          "wait at end of backward ms | scaling efficiency |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.config or list(CONFIGS):
        steps = args.steps or {"tiny": 20, "small": 10, "base": 5}[name]
        one = launch(name, steps, 1, "25MB")
        print(f"| {name} | {one['params']:,} | 1 | - | {one['step_ms']:.0f} | {one['tokens_per_s']:.0f} | - | - | - |",
              flush=True)
        for mode in MODES:
            two = launch(name, steps, 2, mode)
            share = two["allreduce_ms"] / two["step_ms"]
            efficiency = two["tokens_per_s"] / (2 * one["tokens_per_s"])
            print(f"| {name} | {two['params']:,} | 2 ({mode}) | {two['buckets']} | {two['step_ms']:.0f} | "
                  f"{two['tokens_per_s']:.0f} | {two['allreduce_ms']:.1f} ({100 * share:.0f}%) | "
                  f"{two['exposed_ms']:.1f} | {100 * efficiency:.0f}% |", flush=True)
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
