"""The paper's optimizer (transformer/optimizer.py): Adam(0.9, 0.98, 1e-9), and a warmup schedule
whose peak is the paper's rate unless --lr gives another."""
import pytest

import nn
from transformer.optimizer import build_optimizer


def rates(settings, total_steps, n):
    optimizer, schedule = build_optimizer(nn.Linear(2, 2), settings, total_steps)
    out = []
    for _ in range(n):
        out.append(schedule.get_last_lr()[0])
        optimizer.step()
        schedule.step()
    return optimizer, out


def test_noam_peaks_at_the_papers_rate_after_warmup():
    optimizer, lrs = rates({"d_model": 64, "warmup": 4, "lr": None, "schedule": "noam"}, 100, 8)
    group = optimizer.param_groups[0]
    assert group["betas"] == (0.9, 0.98) and group["eps"] == 1e-9
    assert max(lrs) == pytest.approx(64 ** -0.5 * 4 ** -0.5) and lrs.index(max(lrs)) == 3
    _, scaled = rates({"d_model": 64, "warmup": 4, "lr": 0.01, "schedule": "noam"}, 100, 8)
    assert max(scaled) == pytest.approx(0.01)
    assert scaled == pytest.approx([lr * 0.01 / max(lrs) for lr in lrs])


def test_cosine_warms_up_to_the_peak_then_decays_to_zero():
    _, lrs = rates({"d_model": 64, "warmup": 2, "lr": 0.1, "schedule": "cosine"}, 6, 6)
    assert lrs[:3] == pytest.approx([0.05, 0.1, 0.1])
    assert all(a > b for a, b in zip(lrs[2:], lrs[3:])) and lrs[-1] < 0.02
    _, short = rates({"d_model": 64, "warmup": 400, "lr": 0.1, "schedule": "cosine"}, 3, 3)
    assert short[-1] == pytest.approx(0.1)               # warmup cut to the run's length
