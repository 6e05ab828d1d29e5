"""The metrics log (transformer/run_log.py): records round-trip through metrics.jsonl, and a
"train" record averages the steps since the last one per target token, then starts afresh."""
import pytest

import minigrad
from transformer.run_log import METRICS_NAME, TrainingLog, append_records, read_records


def test_records_round_trip_in_order(tmp_path):
    assert read_records(tmp_path) == []
    append_records(tmp_path, [{"kind": "train", "step": 1, "loss": 2.5}])
    append_records(tmp_path, [{"kind": "valid", "step": 1, "note": None}, {"kind": "eval", "step": 2}])
    assert read_records(tmp_path) == [{"kind": "train", "step": 1, "loss": 2.5},
                                      {"kind": "valid", "step": 1, "note": None}, {"kind": "eval", "step": 2}]
    assert len((tmp_path / METRICS_NAME).read_text().splitlines()) == 3


def step_result(loss, nll, correct, tokens):
    return {"loss": minigrad.tensor(loss), "nll": minigrad.tensor(nll), "correct": minigrad.tensor(correct),
            "tokens": tokens, "lr": 0.1}


def test_a_train_record_averages_its_steps_per_token(tmp_path):
    log = TrainingLog(tmp_path, total_steps=10, first_step=0, show_progress=False)
    log.train(0, 0.0, 0.5)                                   # no steps yet: no record
    assert read_records(tmp_path) == []
    log.add_step(step_result(2.0, 1.0, 3, tokens=10))
    log.add_step(step_result(4.0, 3.0, 5, tokens=30))
    log.train(2, 0.123456, 0.5)
    log.add_step(step_result(1.0, 0.5, 7, tokens=8))
    log.train(3, 0.2, 0.25)
    first, second = read_records(tmp_path)
    assert first["kind"] == "train" and first["step"] == 2 and first["epoch"] == 0.1235 and first["lr"] == 0.5
    assert first["loss"] == pytest.approx((2.0 * 10 + 4.0 * 30) / 40)
    assert first["nll"] == pytest.approx((1.0 * 10 + 3.0 * 30) / 40)
    assert first["token_accuracy"] == pytest.approx(8 / 40)
    assert second["loss"] == pytest.approx(1.0) and second["token_accuracy"] == pytest.approx(7 / 8)
    assert first["tokens_per_s"] > 0 and second["elapsed_s"] >= first["elapsed_s"] > 0
    assert log.elapsed() >= second["elapsed_s"]
    log.close()


def test_a_valid_record_is_written_and_shown(tmp_path, capsys):
    log = TrainingLog(tmp_path, total_steps=10, first_step=4, show_progress=False)
    log.valid({"kind": "valid", "step": 4, "loss": 1.25, "nll": 1.0, "token_accuracy": 0.5, "best": False})
    log.valid({"kind": "valid", "step": 6, "loss": 1.0, "nll": 0.75, "token_accuracy": 0.6, "sentences": 20,
               "exact_match": 0.45, "bleu": 51.25, "chrf": 70.0, "bleu_tokenize": "13a", "best": True})
    log.close()
    first, second = read_records(tmp_path)
    assert first == {"kind": "valid", "step": 4, "loss": 1.25, "nll": 1.0, "token_accuracy": 0.5, "best": False}
    assert second["exact_match"] == 0.45 and second["best"] is True
    out = capsys.readouterr().out
    assert "step 4: valid loss 1.250  NLL 1.000  token accuracy 50.0% (teacher-forced)\n" in out
    assert ("step 6: valid loss 1.000  NLL 0.750  token accuracy 60.0% (teacher-forced); greedy on 20: exact match "
            "45.0%  BLEU 51.2 (13a)  chrF 70.0  [best so far]") in out
