"""The paper's optimizer (transformer/optimizer.py): Adam(0.9, 0.98, 1e-9), and a warmup schedule
whose peak is the paper's rate unless --lr gives another."""
import pytest

import nn
from transformer.optimizer import build_optimizer, resume_schedule, schedule_note


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


def test_a_given_rate_is_never_replaced_by_the_default():
    _, lrs = rates({"d_model": 64, "warmup": 4, "lr": 0.0, "schedule": "noam"}, 100, 8)
    assert lrs == [0.0] * 8                  # --lr 0 is refused on the command line; here it is taken as given


def resumed(settings, saved_total, new_total, steps_done):
    """A cosine schedule saved after `steps_done` of `saved_total` steps, restored into a run of `new_total`."""
    optimizer, schedule = build_optimizer(nn.Linear(2, 2), settings, saved_total)
    for _ in range(steps_done):
        optimizer.step()
        schedule.step()
    saved = schedule.state_dict()
    optimizer, schedule = build_optimizer(nn.Linear(2, 2), settings, new_total)
    schedule.load_state_dict(saved)          # as checkpoint.restore_training does: the saved end comes back
    return optimizer, schedule, resume_schedule(schedule, settings, new_total)


def test_a_resumed_cosine_schedule_is_stretched_to_the_new_end():
    settings = {"d_model": 64, "warmup": 2, "lr": 0.1, "schedule": "cosine"}
    optimizer, schedule, note = resumed(settings, 6, 12, 6)
    assert "now ends at step 12 instead of 6" in note
    _, planned = rates(settings, 12, 12)             # the rates of a run planned for 12 steps from the start
    got = []
    for _ in range(6):
        got.append(schedule.get_last_lr()[0])
        assert optimizer.param_groups[0]["lr"] == got[-1]
        optimizer.step()
        schedule.step()
    assert got == pytest.approx(planned[6:]) and min(got) > 0
    assert resumed(settings, 6, 6, 3)[2] is None     # the same end: nothing changes, nothing to say
    assert resumed({**settings, "schedule": "noam"}, 6, 12, 6)[2] is None


def test_a_note_when_the_run_ends_before_the_warmup():
    settings = {"d_model": 64, "warmup": 400, "lr": 0.01, "schedule": "noam"}
    note = schedule_note(settings, 20)
    assert "--steps 20 is below --warmup 400" in note and "never reaches its peak of 0.01" in note
    assert "only 0.0005 at the last step" in note
    assert "never decays" in schedule_note({**settings, "schedule": "cosine"}, 20)
    assert schedule_note(settings, 400) is None
