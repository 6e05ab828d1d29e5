"""benchmarks/transformer_step.py: the minigrad side runs, and the GEMM list covers the step's products."""
import math
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
import transformer_step  # noqa: E402

MICRO = (16, 2, 32, 1, 3, 6, 20)  # d_model, heads, d_ff, layers per side, batch, length, vocabulary


def test_a_minigrad_step_runs_and_reports_everything():
    step, finish = transformer_step.minigrad_session(MICRO, decode_len=4, decode_batch=2)
    losses = [step() for _ in range(3)]
    assert all(math.isfinite(loss) for loss in losses)
    report = finish()
    assert set(report) == {"peak_mb", "decode_tokens_per_s", "tokens", "gemm_floor_ms"}
    assert report["decode_tokens_per_s"]["cached"] > 0 and report["decode_tokens_per_s"]["uncached"] > 0
    assert report["gemm_floor_ms"] > 0 and report["tokens"] > 0


def test_gemm_shapes_count_every_product_forward_and_backward():
    d, h, ff, layers, batch, length, vocab = MICRO
    shapes = transformer_step.gemm_shapes(MICRO)
    # per encoder layer 4 projections + 2 attention products; per decoder layer 7 + 4; the generator: 1
    forward = layers * (4 + 2) + layers * (7 + 4) + 1
    assert len(shapes) == 3 * forward
    flops = sum(2 * m * k * n * repeat for m, k, n, repeat in shapes)
    tokens = batch * length
    generator = 3 * 2 * tokens * d * vocab
    assert flops > generator
