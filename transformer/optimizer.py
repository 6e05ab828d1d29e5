"""The optimizer of "Attention Is All You Need": Adam with the paper's betas and eps, and a warmup
schedule, the paper's (warmup, then 1/sqrt(step) decay) or warmup followed by a cosine decay.

The paper's rate is set by d_model and the warmup length alone; a given peak rate (--lr) scales
the same curve, so the two schedules can be compared at one peak.

A cosine schedule ends at the run's last step, so a resumed run that is given more --steps must
move that end: resume_schedule() does, or the schedule (restored from the checkpoint with its old
end) would run on at learning rate 0 after it. The paper's schedule has no end and needs nothing.
"""
from __future__ import annotations

import minigrad


def peak_rate(settings: dict) -> float:
    """--lr, or the paper's rate: the Noam rate at step == warmup with factor 1."""
    paper_peak = settings["d_model"] ** -0.5 * settings["warmup"] ** -0.5
    return settings["lr"] if settings["lr"] is not None else paper_peak


def build_optimizer(model, settings: dict, total_steps: int):
    """Adam with the paper's betas and eps, and the warmup schedule (--lr sets the peak)."""
    optimizer = minigrad.optim.Adam(model.parameters(), lr=1.0, betas=(0.9, 0.98), eps=1e-9)
    d_model, warmup = settings["d_model"], settings["warmup"]
    paper_peak = d_model ** -0.5 * warmup ** -0.5
    peak = peak_rate(settings)
    if settings["schedule"] == "noam":
        schedule = minigrad.optim.lr_scheduler.NoamLR(optimizer, d_model, warmup, factor=peak / paper_peak)
    else:
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"] = peak
        schedule = minigrad.optim.lr_scheduler.WarmupCosineLR(optimizer, *_cosine_horizon(settings, total_steps),
                                                              min_lr=0.0)
    return optimizer, schedule


def _cosine_horizon(settings: dict, total_steps: int) -> tuple[int, int]:
    """(warmup steps, total steps) of the cosine schedule of a run of `total_steps` steps."""
    return min(settings["warmup"], total_steps), max(total_steps, 1)


def resume_schedule(schedule, settings: dict, total_steps: int) -> str | None:
    """Fit a schedule just restored from a checkpoint to the resumed run's `total_steps`.

    A cosine schedule is stretched (or shrunk) so that it ends at the new last step: from the
    resumed step on, the rate is the one a run planned for `total_steps` from the start would have
    there (so it jumps once, at the resume, when the end moved). Returns a note saying so, or None
    when nothing changed.
    """
    if not isinstance(schedule, minigrad.optim.lr_scheduler.WarmupCosineLR):
        return None
    old_end, old_rate = schedule.total_steps, schedule.get_last_lr()[0]
    schedule.warmup_steps, schedule.total_steps = _cosine_horizon(settings, total_steps)
    if schedule.total_steps == old_end:
        return None
    schedule.last_epoch -= 1
    schedule.step()                     # the rate of the next update, on the new horizon
    return (f"note: the cosine schedule now ends at step {schedule.total_steps} instead of {old_end}; the "
            f"learning rate goes on from {schedule.get_last_lr()[0]:.3g} (it was {old_rate:.3g})")


def schedule_notes(schedule, settings: dict, total_steps: int, resumed: bool) -> list[str]:
    """Fit a resumed run's schedule to its `total_steps` (resume_schedule); the notes to print."""
    notes = [resume_schedule(schedule, settings, total_steps) if resumed else None,
             schedule_note(settings, total_steps)]
    return [note for note in notes if note]


def schedule_note(settings: dict, total_steps: int) -> str | None:
    """A note when --steps ends the run before the warmup does, or None."""
    warmup = settings["warmup"]
    if total_steps >= warmup:
        return None
    if settings["schedule"] == "cosine":
        return (f"note: --steps {total_steps} is below --warmup {warmup}: the warmup is cut to {total_steps} "
                f"steps, so the learning rate reaches its peak only at the last step and never decays")
    peak = peak_rate(settings)
    return (f"note: --steps {total_steps} is below --warmup {warmup}: the learning rate never reaches its "
            f"peak of {peak:.3g}, only {peak * total_steps / warmup:.3g} at the last step")
