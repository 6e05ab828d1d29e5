"""Validation by decoding during training: best.ckpt, --select-by, --patience, and a budget that is a budget."""
import json
import math
import shutil
import sys
from pathlib import Path

import pytest

from transformer import validation as validation_module
from transformer.checkpoint import load_checkpoint
from transformer.errors import UsageError
from transformer.run_log import read_records
from transformer.run_settings import DEFAULT_STEPS, resolve_train_settings
from transformer.validation import Validation

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from test_train import TINY, keep_global_rng, run  # noqa: E402,F401  (keep_global_rng: autouse here too)



# -- choosing the best, counting patience (scripted scores, no model) --------------------------------

class ScriptedCorpus:
    valid_pairs = [("a", "b")] * 3
    src_vocab = tgt_vocab = None
    tokenizer = "word"

    def valid_ids(self, max_len):
        return [], []


def scripted_validation(monkeypatch, results, select_by="exact-match", patience=0):
    """A Validation whose evaluations return `results`, one (loss, exact match, BLEU) each."""
    results = iter(results)
    current = {}

    def losses(*args):
        current["loss"], current["exact"], current["bleu"] = next(results)
        return {"loss": current["loss"], "nll": current["loss"], "token_accuracy": 0.5}

    def scores(*args, **kwargs):
        return {"sentences": 3, "exact_match": current["exact"], "token_accuracy": 0.5, "bleu": current["bleu"],
                "chrf": 50.0, "bleu_tokenize": "13a"}, []

    monkeypatch.setattr(validation_module, "validation_losses", losses)
    monkeypatch.setattr(validation_module, "score_pairs", lambda *a, **k: scores())
    settings = dict(select_by=select_by, patience=patience, batch_size=2, label_smoothing=0.0,
                    decode_batch_size=2, eval_sentences=3, max_len=10)
    return Validation(ScriptedCorpus(), settings, "cpu")


class NoModel:
    def train(self):
        pass


def best_flags(validation, steps):
    return [validation.evaluate(NoModel(), step)["best"] for step in steps]


def test_the_best_is_strictly_better_and_a_tie_goes_to_the_lower_loss(monkeypatch):
    v = scripted_validation(monkeypatch, [(2.0, 0.5, 10), (1.9, 0.4, 30), (1.8, 0.5, 20), (1.5, 0.5, 20),
                                          (1.5, 0.5, 40), (1.0, 0.9, 5)])
    assert best_flags(v, [1, 2, 3, 4, 5, 6]) == [True, False, True, True, False, True]
    assert v.best_step == 6 and v.best_record["exact_match"] == 0.9


def test_select_by_bleu_and_by_loss(monkeypatch):
    v = scripted_validation(monkeypatch, [(2.0, 0.5, 10), (2.5, 0.1, 30), (1.0, 0.9, 20)], select_by="bleu")
    assert best_flags(v, [1, 2, 3]) == [True, True, False] and v.best_step == 2
    v = scripted_validation(monkeypatch, [(2.0, 0.5, 10), (2.5, 0.9, 30), (1.0, 0.1, 20), (1.0, 0.9, 50)],
                            select_by="loss")
    assert best_flags(v, [1, 2, 3, 4]) == [True, False, True, False] and v.best_step == 3


def test_a_score_that_is_not_finite_is_never_the_best(monkeypatch):
    v = scripted_validation(monkeypatch, [(math.nan, 0.5, 10), (2.0, 0.1, 1)], select_by="loss")
    assert best_flags(v, [1, 2]) == [True, True] and v.best_step == 2


def test_patience_counts_evaluations_without_improvement(monkeypatch):
    v = scripted_validation(monkeypatch, [(2.0, 0.5, 10), (2.0, 0.5, 10), (1.0, 0.6, 10), (2.0, 0.5, 10),
                                          (2.0, 0.5, 10)], patience=2)
    outcomes = []
    for step in range(1, 6):
        v.evaluate(NoModel(), step)
        outcomes.append(v.out_of_patience())
    assert outcomes == [False, False, False, False, True]
    assert "--patience 2" in v.stop_reason() and "step 3" in v.stop_reason()
    never = scripted_validation(monkeypatch, [(2.0, 0.5, 10)] * 5, patience=0)
    best_flags(never, range(5))
    assert not never.out_of_patience() and never.evaluations_without_improvement == 4


def test_the_state_round_trips_and_a_bad_one_is_refused(monkeypatch):
    v = scripted_validation(monkeypatch, [(2.0, 0.5, 10), (2.5, 0.4, 10)], patience=3)
    best_flags(v, [10, 20])
    state = json.loads(json.dumps(v.state_dict()))           # as a checkpoint stores it
    w = scripted_validation(monkeypatch, [(2.4, 0.45, 10)], patience=3)
    w.load_state_dict(state)
    assert (w.best_step, w.evaluations_without_improvement) == (10, 1)
    assert best_flags(w, [30]) == [False] and w.evaluations_without_improvement == 2
    w.load_state_dict({})                                     # a checkpoint from before validation was saved
    for bad in ({**state, "select_by": "bleu"}, {**state, "best_step": "10"}, {**state, "best_key": ["x"]},
                {**state, "evaluations_without_improvement": -1}):
        with pytest.raises(ValueError, match="validation state"):
            w.load_state_dict(bad)


# -- the settings ---------------------------------------------------------------------------------------

def test_a_time_budget_alone_is_the_only_limit():
    assert resolve_train_settings({"time_budget": 30.0}, None)["steps"] is None
    assert resolve_train_settings({}, None)["steps"] == DEFAULT_STEPS
    assert resolve_train_settings({"time_budget": 30.0, "steps": 10}, None)["steps"] == 10
    assert resolve_train_settings({"time_budget": 30.0, "epochs": 2.0}, None)["steps"] is None
    resumed = resolve_train_settings({}, {**resolve_train_settings({"time_budget": 30.0}, None), "device": "cpu"})
    assert resumed["steps"] is None          # a budget-only run resumes as one
    with pytest.raises(UsageError, match="--schedule cosine needs to know where the run ends"):
        resolve_train_settings({"time_budget": 30.0, "schedule": "cosine"}, None)
    assert resolve_train_settings({"time_budget": 30.0, "schedule": "cosine", "steps": 50}, None)["steps"] == 50


def test_select_by_a_score_needs_decoded_sentences():
    with pytest.raises(UsageError, match="--select-by bleu needs decoded sentences"):
        resolve_train_settings({"select_by": "bleu", "eval_sentences": 0}, None)
    assert resolve_train_settings({"select_by": "loss", "eval_sentences": 0}, None)["eval_sentences"] == 0
    with pytest.raises(UsageError, match="--patience must be 0 or more"):
        resolve_train_settings({"patience": -1}, None)


# -- training runs ----------------------------------------------------------------------------------------

VALIDATED = TINY[:TINY.index("--eval-every")] + TINY[TINY.index("--eval-every") + 2:] + [
    "--eval-every", "2", "--eval-sentences", "4"]


def valid_records(run_dir):
    return [r for r in read_records(Path(run_dir)) if r["kind"] == "valid"]


def test_validation_decodes_keeps_the_best_and_scores_it(tmp_path, capsys, monkeypatch):
    run_dir = tmp_path / "run"
    losses = iter([3.0, 1.0, 2.0, 2.5])          # the loss decides: the best is step 4, not the last
    real = validation_module.validation_losses

    def scripted(*args):
        return {**real(*args), "loss": next(losses)}

    monkeypatch.setattr(validation_module, "validation_losses", scripted)
    code, out, _ = run(VALIDATED + ["--steps", "8", "--select-by", "loss", "--out", run_dir], capsys)
    assert code == 0
    records = valid_records(run_dir)
    assert [r["step"] for r in records] == [2, 4, 6, 8] and [r["best"] for r in records] == [True, True, False, False]
    for record in records:
        assert record["sentences"] == 4 and 0 <= record["exact_match"] <= 1 and record["bleu_tokenize"] == "13a"
        assert {"bleu", "chrf", "decoded_token_accuracy"} <= set(record)
    assert "greedy on 4: exact match" in out and "[best so far]" in out
    best = load_checkpoint(run_dir / "best.ckpt")
    assert best["step"] == 4 and load_checkpoint(run_dir / "last.ckpt")["step"] == 8
    assert "best validation loss at step 4" in out and "held-out, greedy, step 4:" in out
    final = [r for r in read_records(run_dir) if r["kind"] == "eval"]
    assert [r["step"] for r in final] == [4]
    code, out, _ = run(["evaluate", "--checkpoint", run_dir], capsys)   # a run directory means its best.ckpt
    assert code == 0 and "best.ckpt (step 4)" in out


def test_patience_stops_the_run(tmp_path, capsys, monkeypatch):
    real = validation_module.validation_losses
    monkeypatch.setattr(validation_module, "validation_losses", lambda *a: {**real(*a), "loss": 1.0})
    monkeypatch.setattr(validation_module, "score_pairs", lambda *a, **k: (
        {"sentences": 4, "exact_match": 0.25, "token_accuracy": 0.5, "bleu": 1.0, "chrf": 2.0,
         "bleu_tokenize": "13a"}, []))
    code, out, _ = run(VALIDATED + ["--steps", "20", "--patience", "2", "--out", tmp_path / "run"], capsys)
    assert code == 0 and "stopped after step 6 (no better exact-match in 2 evaluations (--patience 2)" in out
    assert [r["step"] for r in valid_records(tmp_path / "run")] == [2, 4, 6]


@pytest.mark.slow
def test_resume_validates_exactly_and_carries_the_best(tmp_path, capsys):
    """4 + 4 resumed steps validate as 8 in one run: the same records, the same best, the same state."""
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert run(VALIDATED + ["--steps", "8", "--out", whole], capsys)[0] == 0
    assert run(VALIDATED + ["--steps", "4", "--out", split], capsys)[0] == 0
    assert run(["--resume", split, "--steps", "8", "--no-progress"], capsys)[0] == 0
    expected, got = valid_records(whole), valid_records(split)
    assert [r["step"] for r in expected] == [r["step"] for r in got] == [2, 4, 6, 8]
    for a, b in zip(expected, got):
        assert a["best"] == b["best"] and a["exact_match"] == b["exact_match"]
        assert abs(a["loss"] - b["loss"]) <= 1e-6
    one, two = load_checkpoint(whole / "last.ckpt"), load_checkpoint(split / "last.ckpt")
    assert one["validation"]["best_step"] == two["validation"]["best_step"]
    assert one["validation"]["evaluations_without_improvement"] == two["validation"]["evaluations_without_improvement"]
    assert load_checkpoint(whole / "best.ckpt")["step"] == load_checkpoint(split / "best.ckpt")["step"]


def test_a_resume_elsewhere_takes_the_best_along_and_never_a_stranger(tmp_path, capsys):
    first, elsewhere = tmp_path / "first", tmp_path / "elsewhere"
    assert run(VALIDATED + ["--steps", "4", "--save-every", "4", "--out", first], capsys)[0] == 0
    best_step = load_checkpoint(first / "last.ckpt")["validation"]["best_step"]
    code, out, _ = run(["--resume", first / "last.ckpt", "--out", elsewhere, "--steps", "5", "--no-progress"], capsys)
    assert code == 0 and "no best.ckpt" not in out
    assert (elsewhere / "best.ckpt").is_file() and (first / "best.ckpt").is_file()
    assert load_checkpoint(elsewhere / "best.ckpt")["step"] in (best_step, 5)
    # A best.ckpt of another step than last.ckpt knows (a run killed between the two saves) is not taken.
    stranger = tmp_path / "stranger"
    shutil.copytree(first, stranger)
    (stranger / "best.ckpt").unlink()
    (stranger / ".lock").unlink(missing_ok=True)
    code, out, _ = run(["--resume", stranger, "--steps", "5", "--no-progress"], capsys)
    assert code == 0 and f"no best.ckpt of step {best_step} found" in out


def test_a_time_budget_alone_trains_until_it_is_spent(tmp_path, capsys):
    code, out, _ = run(TINY + ["--time-budget", "1", "--out", tmp_path / "run"], capsys)
    assert code == 0 and "(time budget of 1 s)" in out and "training 1 s" in out
    assert "up to" not in out.split("training", 1)[1].split("\n")[0]
    step = load_checkpoint(tmp_path / "run" / "last.ckpt")["step"]
    assert step > 0 and load_checkpoint(tmp_path / "run" / "last.ckpt")["settings"]["steps"] is None
    code, _, err = run(TINY + ["--time-budget", "1", "--schedule", "cosine", "--out", tmp_path / "x"], capsys)
    assert code == 2 and "--schedule cosine needs to know where the run ends" in err
