"""Divergence (transformer/divergence.py): a non-finite step is skipped, a few in a row stop the run,
and a state that is not finite is found (and named) before it could be saved."""
import math

import pytest

import minigrad
from transformer.divergence import (MAX_NONFINITE_STEPS, DivergenceGuard, Diverged, check_finite, divergence_advice,
                                    nonfinite_tensor)


def t(value):
    return minigrad.tensor(value)


def test_a_bad_step_is_skipped_and_three_in_a_row_stop_the_run():
    notes = []
    guard = DivergenceGuard(report=notes.append)
    assert MAX_NONFINITE_STEPS == 3
    assert guard.allows_update(0, t(2.5), t(0.5))
    assert not guard.allows_update(1, t(math.nan), t(0.5))
    assert not guard.allows_update(1, t(1.0), t(math.inf))          # the gradient alone counts too
    assert guard.allows_update(1, t(1.0), t(0.5))                   # a good step starts the count afresh
    assert not guard.allows_update(2, t(math.inf), t(math.nan))
    assert not guard.allows_update(2, t(-math.inf), t(1.0))
    with pytest.raises(Diverged, match="after step 2, 3 batches in a row gave a loss or gradient that is not finite"):
        guard.allows_update(2, t(math.nan), t(math.nan))
    assert len(notes) == 4 and notes[0] == ("after step 1: loss nan, gradient norm 0.5: not finite, update skipped "
                                            "(1 in a row; 3 in a row stop the run)")


def test_the_first_state_that_is_not_finite_is_named():
    good = {"w": t([1.0, 2.0]), "n": t([1, 2]), "lr": 0.1, "nested": [{"m": t([0.0])}]}
    assert nonfinite_tensor(model=good, optimizer={"state": {}, "param_groups": [{"lr": 0.5}]}) is None
    assert nonfinite_tensor(model={**good, "b": t([0.0, math.nan])}) == "model['b']"
    assert nonfinite_tensor(optimizer={"state": {0: {"exp_avg_sq": t([math.inf])}}}) == \
        "optimizer['state'][0]['exp_avg_sq']"
    assert nonfinite_tensor(optimizer={"param_groups": [{"lr": math.nan}]}) == "optimizer['param_groups'][0]['lr']"
    check_finite(4, model=good)
    with pytest.raises(Diverged, match=r"model\['w'\] is not finite after step 4"):
        check_finite(4, model={"w": t([math.nan])})


def test_the_advice_names_what_is_kept_and_what_to_try():
    advice = divergence_advice("runs/x/last.ckpt", 20, {"lr": 1e12, "clip": 1.0})
    assert "the last checkpoint, runs/x/last.ckpt (step 20), is kept" in advice and "--lr 1e+12" in advice
    assert "--clip" not in advice
    advice = divergence_advice("runs/x/last.ckpt", None, {"lr": None, "clip": 0.0})
    assert "no checkpoint had been saved yet" in advice and "with --clip 1" in advice
