"""Time one training step of the same encoder-decoder Transformer in minigrad and in PyTorch eager.

    python benchmarks/transformer_step.py                 # tiny, small and base
    python benchmarks/transformer_step.py --config tiny --steps 20 --threads 2

Each framework runs in its own subprocess with the same thread count, shapes,
padding, dropout 0.1 and label-smoothed cross-entropy; a step is forward,
backward and an Adam update. The two processes take turns (--round-steps steps
each), so a shared machine that changes speed during the run affects both alike.
Reported: median ms/step over --steps steps after --warmup steps, target tokens/s, the minigrad/PyTorch ratio, peak memory (growth
of the peak RSS over the process's RSS before the model was built), greedy
decoding tokens/s with and without the key/value cache (--decode-batch sentences,
30 tokens each), and how the step compares with its matrix-product floor: the
step's GEMMs timed alone in NumPy.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CONFIGS = {  # d_model, heads, d_ff, layers per side, batch, sequence length, vocabulary
    "tiny": (64, 4, 256, 2, 32, 16, 200),
    "small": (128, 4, 512, 3, 64, 24, 1000),
    "base": (256, 8, 1024, 3, 64, 32, 8000),
}
PAD, BOS, EOS = 0, 1, 2


def _rss_mb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_rss_mb():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_batch(config, seed=0):
    """Token ids with per-sentence lengths between half and all of the sequence length, pad-filled."""
    import numpy as np

    d, h, ff, layers, batch, length, vocab = config
    rng = np.random.default_rng(seed)

    def sentences(n, extra):
        ids = rng.integers(3, vocab, size=(n, length + extra))
        lengths = rng.integers(length // 2, length + 1, size=n)
        for row, size in zip(ids, lengths):
            row[size + extra:] = PAD
        return ids

    src = sentences(batch, 0)
    tgt = sentences(batch, 1)  # BOS..., shifted: input is tgt[:, :-1], output tgt[:, 1:]
    tgt[:, 0] = BOS
    return src, tgt[:, :-1].copy(), tgt[:, 1:].copy()


# -- one framework per process ---------------------------------------------------------------------
def minigrad_session(config, decode_len, decode_batch, tune=False):
    """(step, finish): one training step, and what is measured once the timing is over.

    tune: call minigrad.tune_cpu() first (the worker processes do; a test calling this in its own
    process does not), so that malloc keeps freed blocks and OpenBLAS's idle threads stop spinning sooner."""
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
    import minigrad

    if tune:
        minigrad.tune_cpu()
    import minigrad.functional as F
    from transformer.decoding import greedy_decode
    from transformer.model import Transformer

    d, h, ff, layers, batch, length, vocab = config
    src_np, tgt_in_np, tgt_out_np = make_batch(config)
    minigrad.manual_seed(0)
    rss_before = _rss_mb()
    model = Transformer(vocab, vocab, d_model=d, n_heads=h, d_ff=ff, n_encoder_layers=layers, n_decoder_layers=layers,
                        dropout=0.1, pad_id=PAD, max_len=max(length, decode_len) + 2)
    optimizer = minigrad.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9)
    src, tgt_in, tgt_out = (minigrad.tensor(a) for a in (src_np, tgt_in_np, tgt_out_np))

    def step():
        logits = model(src, tgt_in)
        loss = F.cross_entropy(logits.reshape(-1, vocab), tgt_out.reshape(-1), ignore_index=PAD, label_smoothing=0.1)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()

    def finish():
        peak = _peak_rss_mb() - rss_before
        return {"peak_mb": peak, "decode_tokens_per_s": decode_speeds(), "tokens": int((tgt_out_np != PAD).sum()),
                "gemm_floor_ms": gemm_floor_ms(config)}

    def decode_speeds():
        decode = {}
        for cached in (True, False):  # eos_id=-1 is never produced: every sentence runs to decode_len tokens
            def run():
                return greedy_decode(model, src[:decode_batch or batch], max_len=decode_len, bos_id=BOS, eos_id=-1,
                                     use_cache=cached)
            tokens = sum(len(s) for s in run())  # the first run warms up
            elapsed = statistics.median(_time(run, 3))
            decode["cached" if cached else "uncached"] = tokens / elapsed
        return decode

    return step, finish


def torch_session(config, threads):
    """(step, finish) for the same model in PyTorch eager."""
    import math

    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    d, h, ff, layers, batch, length, vocab = config
    src_np, tgt_in_np, tgt_out_np = make_batch(config)
    rss_before = _rss_mb()

    class TorchModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.src_embed = torch.nn.Embedding(vocab, d, padding_idx=PAD)
            self.tgt_embed = torch.nn.Embedding(vocab, d, padding_idx=PAD)
            self.core = torch.nn.Transformer(d, h, layers, layers, ff, dropout=0.1, batch_first=True)
            self.generator = torch.nn.Linear(d, vocab)
            position = torch.arange(256).unsqueeze(1)
            rate = torch.exp(torch.arange(0, d, 2) * (-math.log(10000.0) / d))
            table = torch.zeros(256, d)
            table[:, 0::2], table[:, 1::2] = torch.sin(position * rate), torch.cos(position * rate)
            self.register_buffer("positions", table)
            self.dropout = torch.nn.Dropout(0.1)

        def embed(self, table, ids):
            return self.dropout(table(ids) * math.sqrt(d) + self.positions[: ids.shape[1]])

        def forward(self, src, tgt_in):
            causal = torch.triu(torch.ones(tgt_in.shape[1], tgt_in.shape[1], dtype=torch.bool), 1)
            out = self.core(self.embed(self.src_embed, src), self.embed(self.tgt_embed, tgt_in), tgt_mask=causal,
                            src_key_padding_mask=src == PAD, tgt_key_padding_mask=tgt_in == PAD,
                            memory_key_padding_mask=src == PAD)
            return self.generator(out)

    model = TorchModel().train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9)
    src, tgt_in, tgt_out = (torch.from_numpy(a) for a in (src_np, tgt_in_np, tgt_out_np))
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=PAD, label_smoothing=0.1)

    def step():
        logits = model(src, tgt_in)
        loss = loss_fn(logits.reshape(-1, vocab), tgt_out.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()

    return step, lambda: {"peak_mb": _peak_rss_mb() - rss_before}


def _time(step, steps):
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times


def gemm_shapes(config):
    """(m, k, n) of every matrix product in one training step (forward and backward) of the model."""
    d, h, ff, layers, batch, length, vocab = config
    tokens = batch * length
    dk = d // h
    forward = []
    attention = [(length, dk, length), (length, length, dk)]  # scores = q k^T; out = weights v (per batch*head)
    for _ in range(layers):  # encoder: qkv, out, ff1, ff2
        forward += [(tokens, d, 3 * d), (tokens, d, d), (tokens, d, ff), (tokens, ff, d)]
        forward += [shape + (batch * h,) for shape in attention]
    for _ in range(layers):  # decoder: self qkv, out; cross q, kv, out; ff1, ff2
        forward += [(tokens, d, 3 * d), (tokens, d, d), (tokens, d, d), (tokens, d, 2 * d), (tokens, d, d),
                    (tokens, d, ff), (tokens, ff, d)]
        forward += [shape + (batch * h,) for shape in attention * 2]
    forward.append((tokens, d, vocab))
    step = []
    for shape in forward:
        m, k, n = shape[:3]
        repeat = shape[3] if len(shape) > 3 else 1
        # forward C = A B; backward dA = dC B^T, dB = A^T dC
        step += [(m, k, n, repeat), (m, n, k, repeat), (k, m, n, repeat)]
    return step


def gemm_floor_ms(config, repeats=5):
    """Time the step's matrix products alone in NumPy (float32): the floor a NumPy engine cannot beat."""
    import numpy as np

    rng = np.random.default_rng(0)
    total = 0.0
    for m, k, n, batch in gemm_shapes(config):
        a = rng.standard_normal((batch, m, k) if batch > 1 else (m, k), dtype=np.float32)
        b = rng.standard_normal((batch, k, n) if batch > 1 else (k, n), dtype=np.float32)
        np.matmul(a, b)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            np.matmul(a, b)
            best = min(best, time.perf_counter() - start)
        total += best
    return total * 1000


# -- the two frameworks, interleaved ----------------------------------------------------------------
def worker(framework, name, args):
    """Build, warm up, then answer the driver: "steps N" -> N step times; "finish" -> the rest, and exit."""
    config = CONFIGS[name]
    if framework == "minigrad":
        step, finish = minigrad_session(config, args.decode_len, args.decode_batch, tune=True)
    else:
        step, finish = torch_session(config, args.threads)
    _time(step, args.warmup)
    print("ready", flush=True)
    for line in sys.stdin:
        command = line.split()
        if command[0] == "steps":
            print(json.dumps(_time(step, int(command[1]))), flush=True)
        else:
            print(json.dumps(finish()), flush=True)
            return


class Worker:
    """One framework in its own process with the benchmark's thread settings."""

    def __init__(self, framework, name, args):
        env = dict(os.environ)
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(args.threads)
        if not args.keep_openblas_coretype:
            # A forced OpenBLAS core type (set on some machines) slows current NumPy; PyTorch ignores it.
            env.pop("OPENBLAS_CORETYPE", None)
            env.pop("OPENBLAS_L2_SIZE", None)
        command = [sys.executable, __file__, "--worker", framework, "--config", name, "--warmup", str(args.warmup),
                   "--threads", str(args.threads), "--decode-len", str(args.decode_len),
                   "--decode-batch", str(args.decode_batch)]
        self.process = subprocess.Popen(command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        self.result = {"times": []}
        self._read()  # "ready" (or the error that stopped it)

    def _read(self):
        line = self.process.stdout.readline()
        if not line:
            error = self.process.stderr.read().strip().splitlines()
            self.result = {"error": error[-1] if error else "failed"}
            return None
        return line

    def steps(self, count):
        if "error" in self.result:
            return
        self.process.stdin.write(f"steps {count}\n")
        self.process.stdin.flush()
        line = self._read()
        if line is not None:
            self.result["times"] += json.loads(line)

    def finish(self):
        if "error" not in self.result:
            self.process.stdin.write("finish\n")
            self.process.stdin.flush()
            line = self._read()
            if line is not None:
                self.result.update(json.loads(line))
        self.process.kill()
        self.process.wait()
        return self.result


def measure(name, args, frameworks=("minigrad", "torch")):
    """Time both frameworks in alternating rounds of --round-steps steps, so that a machine that
    speeds up or slows down during the run (shared hosts do) moves both medians alike."""
    workers = [Worker(framework, name, args) for framework in frameworks]
    done = 0
    while done < args.steps:
        count = min(args.round_steps, args.steps - done)
        for w in workers:
            time.sleep(0.2)  # let the other framework's idle threads stop spinning first
            w.steps(count)
        done += count
    return [w.finish() for w in workers]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="all", choices=["all"] + list(CONFIGS))
    parser.add_argument("--steps", type=int, default=10, help="timed steps per framework (at least 10)")
    parser.add_argument("--round-steps", type=int, default=5, help="steps per turn when alternating frameworks")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--decode-len", type=int, default=30)
    parser.add_argument("--decode-batch", type=int, default=0,
                        help="sentences decoded at once (default: the configuration's batch size)")
    parser.add_argument("--keep-openblas-coretype", action="store_true",
                        help="keep OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE from the environment")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--worker", choices=["minigrad", "torch"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.config, args)
        return

    names = list(CONFIGS) if args.config == "all" else [args.config]
    rows = []
    for name in names:
        ours, theirs = measure(name, args)
        rows.append({"config": name, "minigrad": ours, "torch": theirs})
        print(format_row(name, ours, theirs), flush=True)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(rows, out, indent=1)


def format_row(name, ours, theirs):
    if "error" in ours:
        return f"{name}: minigrad failed: {ours['error']}"
    ms = statistics.median(ours["times"]) * 1000
    line = (f"{name:5s} minigrad {ms:8.1f} ms/step  {ours['tokens'] / ms * 1000:9.0f} tok/s  "
            f"peak +{ours['peak_mb']:.0f} MB  GEMM floor {ours['gemm_floor_ms']:.1f} ms "
            f"(step/floor {ms / ours['gemm_floor_ms']:.2f})  decode cached {ours['decode_tokens_per_s']['cached']:.0f} "
            f"tok/s, uncached {ours['decode_tokens_per_s']['uncached']:.0f} tok/s "
            f"({ours['decode_tokens_per_s']['cached'] / ours['decode_tokens_per_s']['uncached']:.1f}x)")
    if "error" in theirs or not theirs["times"]:
        return line + f" | torch: {theirs.get('error', 'no times')}"
    torch_ms = statistics.median(theirs["times"]) * 1000
    return line + (f" | torch {torch_ms:8.1f} ms/step, peak +{theirs['peak_mb']:.0f} MB | ratio minigrad/torch "
                   f"{ms / torch_ms:.2f}, memory ratio {ours['peak_mb'] / max(theirs['peak_mb'], 1e-9):.2f}")


if __name__ == "__main__":
    main()
