"""The optimizer of "Attention Is All You Need": Adam with the paper's betas and eps, and a warmup
schedule, the paper's (warmup, then 1/sqrt(step) decay) or warmup followed by a cosine decay.

The paper's rate is set by d_model and the warmup length alone; a given peak rate (--lr) scales
the same curve, so the two schedules can be compared at one peak.
"""
from __future__ import annotations

import minigrad


def build_optimizer(model, settings: dict, total_steps: int):
    """Adam with the paper's betas and eps, and the warmup schedule (--lr sets the peak)."""
    optimizer = minigrad.optim.Adam(model.parameters(), lr=1.0, betas=(0.9, 0.98), eps=1e-9)
    d_model, warmup = settings["d_model"], settings["warmup"]
    paper_peak = d_model ** -0.5 * warmup ** -0.5        # Noam rate at step == warmup with factor 1
    peak = settings["lr"] or paper_peak
    if settings["schedule"] == "noam":
        schedule = minigrad.optim.lr_scheduler.NoamLR(optimizer, d_model, warmup, factor=peak / paper_peak)
    else:
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"] = peak
        schedule = minigrad.optim.lr_scheduler.WarmupCosineLR(optimizer, min(warmup, total_steps),
                                                              max(total_steps, 1), min_lr=0.0)
    return optimizer, schedule
