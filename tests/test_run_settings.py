"""The settings of a training run (transformer/run_settings.py): the command line over a checkpoint
over the defaults, a resume that may not change the model or the data, and bad values refused."""
import argparse
import os
import re

import pytest

import minigrad
from transformer.errors import UsageError
from transformer.run_settings import (CHANGEABLE_ON_RESUME, DEFAULT_STEPS, TRAIN_DEFAULTS, add_train_flags,
                                      resolve_train_settings)


def flags(*argv):
    parser = argparse.ArgumentParser()
    add_train_flags(parser)
    return vars(parser.parse_args(list(argv)))


def test_every_flag_defaults_to_not_given_and_its_help_names_the_default():
    parser = argparse.ArgumentParser()
    add_train_flags(parser)
    given = vars(parser.parse_args([]))
    assert set(given) == set(TRAIN_DEFAULTS) | {"resume", "overwrite"} and all(value is None for value in given.values())
    text = " ".join(parser.format_help().split())
    assert "width of every token vector (default: 128)" in text
    assert "(default: False)" not in text and f"(default: {DEFAULT_STEPS} unless --epochs or --time-budget is given)" in text


def test_defaults_then_the_command_line(tmp_path, monkeypatch):
    monkeypatch.delenv("MINIGRAD_DEVICE", raising=False)
    settings = resolve_train_settings(flags(), None)
    assert settings == {**TRAIN_DEFAULTS, "steps": DEFAULT_STEPS, "device": minigrad.get_default_device()}
    settings = resolve_train_settings(flags("--d-model", "64", "--epochs", "2", "--norm-first", "--no-progress"), None)
    assert settings["d_model"] == 64 and settings["norm_first"] is True and settings["progress"] is False
    assert settings["epochs"] == 2.0 and settings["steps"] is None          # --epochs alone: no step limit
    monkeypatch.chdir(tmp_path)
    settings = resolve_train_settings(flags("--data", "pairs.tsv"), None)
    assert settings["task"] is None and settings["data"] == os.path.join(str(tmp_path.resolve()), "pairs.tsv")


def test_a_resume_takes_the_checkpoint_and_may_change_only_how_long_and_where():
    saved = resolve_train_settings(flags("--d-model", "64", "--data", "/data/pairs.tsv", "--steps", "10"), None)
    resumed = resolve_train_settings(flags("--steps", "20", "--log-every", "5"), saved)
    assert resumed == {**saved, "steps": 20, "log_every": 5}
    assert resolve_train_settings(flags("--d-model", "64"), saved)["d_model"] == 64    # the same value is fine
    with pytest.raises(UsageError, match="cannot change --d-model, --lr when resuming"):
        resolve_train_settings(flags("--lr", "0.1", "--d-model", "32"), saved)
    assert {"steps", "out", "device"} <= CHANGEABLE_ON_RESUME and "d_model" not in CHANGEABLE_ON_RESUME


@pytest.mark.parametrize("argv, message", [
    (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    (["--d-model", "30", "--heads", "4"], "--d-model 30 is not divisible by --heads 4"),
    (["--dropout", "1.0"], "--dropout must be in [0, 1), got 1.0"),
    (["--label-smoothing", "-0.1"], "--label-smoothing must be in [0, 1), got -0.1"),
    (["--lr", "0"], "--lr must be a finite number above 0 (leave it out for the paper's rate), got 0.0"),
    (["--lr", "nan"], "--lr must be a finite number above 0"),
    (["--lr", "inf"], "--lr must be a finite number above 0"),
    (["--lr=-0.001"], "--lr must be a finite number above 0"),
    (["--warmup", "0"], "--warmup must be at least 1, got 0"),
    (["--steps", "0"], "--steps must be at least 1, got 0"),
    (["--steps", "-5"], "--steps must be at least 1, got -5"),
    (["--dropout", "nan"], "--dropout must be in [0, 1), got nan"),
    (["--label-smoothing", "inf"], "--label-smoothing must be in [0, 1), got inf"),
    (["--clip", "-1"], "--clip must be a finite number, 0 or more (0: no clipping), got -1.0"),
    (["--clip", "nan"], "--clip must be a finite number, 0 or more"),
    (["--clip", "inf"], "--clip must be a finite number, 0 or more"),
    (["--eval-every", "-1"], "--eval-every must be 0 or more (0: only at the end), got -1"),
    (["--save-every", "-5"], "--save-every must be 0 or more (0: only at the end), got -5"),
    (["--log-every", "0"], "--log-every must be at least 1, got 0"),
    (["--epochs", "nan"], "--epochs must be a finite number above 0, got nan"),
    (["--epochs", "0"], "--epochs must be a finite number above 0, got 0.0"),
    (["--time-budget", "nan"], "--time-budget must be a number of seconds above 0, got nan"),
    (["--encoder-layers", "0"], "--encoder-layers must be at least 1, got 0"),
    (["--examples", "-1"], "--examples must be 0 or more, got -1"),
    (["--beam", "0"], "--beam must be at least 1, got 0"),
    (["--decode-batch-size", "0"], "--decode-batch-size must be at least 1, got 0"),
    (["--seed", "-1"], "--seed must be 0 or more, got -1"),
])
def test_bad_values_are_refused(argv, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        resolve_train_settings(flags(*argv), None)


def test_sensible_edge_values_are_allowed():
    settings = resolve_train_settings(flags("--clip", "0", "--save-every", "0", "--eval-every", "0", "--dropout", "0",
                                            "--label-smoothing", "0", "--examples", "0", "--time-budget", "inf",
                                            "--lr", "1e-9", "--steps", "1", "--warmup", "1"), None)
    assert settings["clip"] == 0 and settings["lr"] == 1e-9 and settings["time_budget"] == float("inf")
