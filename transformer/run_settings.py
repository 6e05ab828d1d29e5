"""The settings of a training run: each one's default and command-line flag, what a resumed run may
change, and how the command line, a checkpoint and the defaults combine into one dict.

A checkpoint stores this dict, so a resumed run trains the same model on the same data with the
same optimisation; only what does not change the result (how long, where, how often to log) may
be given anew.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import minigrad

from .errors import UsageError
from .flag_checks import check_flags
from .tokenizers import TOKENIZER_KINDS, check_tokenizer_flags
from .toy_tasks import TASKS

# Defaults of `train`, sized so that the toy task reaches >= 95% exact match on 2 CPU cores in a few
# minutes (see docs/benchmarks.md). Flags default to None in argparse so that a resumed run can tell
# "given on the command line" from "not given" and take the rest from the checkpoint.
TRAIN_DEFAULTS = dict(
    task="toy", data=None, tokenizer="word", vocab_size=8000, joint_vocab=False, min_freq=1, valid_size=None,
    train_size=50_000, skip_bad_lines=False, max_len=256,
    d_model=128, heads=4, d_ff=512, layers=2, encoder_layers=None, decoder_layers=None, dropout=0.1,
    norm_first=False,
    batch_size=64, steps=None, epochs=None, time_budget=480.0, lr=None, warmup=400, schedule="noam",
    label_smoothing=0.1, clip=1.0,
    seed=0, device=None, out=None, save_every=500, log_every=10, eval_every=500, examples=5,
    beam=None, decode_batch_size=250, attention_sentence=None, progress=True,
)
DEFAULT_STEPS = 2400           # when neither --steps nor --epochs is given
# What a resumed run may change; everything else (model, data, optimisation) comes from the checkpoint.
CHANGEABLE_ON_RESUME = {"steps", "epochs", "time_budget", "device", "out", "save_every", "log_every", "eval_every",
                        "examples", "beam", "decode_batch_size", "attention_sentence", "progress"}


def add_train_flags(parser: argparse.ArgumentParser):
    """The `train` command's flags, in four groups. Each defaults to None (not given); its help names
    the default that resolve_train_settings fills in."""

    def flag(*names, **kwargs):
        key = names[0].lstrip("-").replace("-", "_")
        if key in TRAIN_DEFAULTS and TRAIN_DEFAULTS[key] is not None and kwargs.get("action") != "store_true":
            kwargs["help"] = kwargs.get("help", "") + f" (default: {TRAIN_DEFAULTS[key]})"
        kwargs.setdefault("default", None)
        group.add_argument(*names, **kwargs)

    group = parser.add_argument_group("data")
    flag("--task", choices=TASKS, help="built-in task, generated offline")
    flag("--data", metavar="FILE.tsv", help="your own pairs: one 'source<TAB>target' per line (UTF-8)")
    flag("--tokenizer", choices=TOKENIZER_KINDS,
         help="split sentences into words, characters, or BPE subwords learned from the training pairs")
    flag("--vocab-size", type=int, help="--tokenizer bpe: pieces in each side's vocabulary, specials included "
                                        "(more if the training text has more distinct characters)")
    flag("--joint-vocab", action="store_true", help="--tokenizer bpe: one BPE and one vocabulary for both sides "
                                                    "(default: one per side)")
    flag("--min-freq", type=int, help="word or char tokens seen fewer times in training become <unk>")
    flag("--valid-size", type=int, help="held-out pairs (default: 1000 for tasks, min(1000, 10%%) for a file)")
    flag("--train-size", type=int, help="training pairs generated for a built-in task")
    flag("--skip-bad-lines", action="store_true", help="skip (and count) malformed lines instead of stopping")
    flag("--max-len", type=int, help="longest sentence in tokens the model handles; longer pairs are skipped")

    group = parser.add_argument_group("model")
    flag("--d-model", type=int, help="width of every token vector")
    flag("--heads", type=int, help="attention heads")
    flag("--d-ff", type=int, help="hidden width of the feed-forward blocks")
    flag("--layers", type=int, help="layers on each side")
    flag("--encoder-layers", type=int, help="encoder layers (default: --layers)")
    flag("--decoder-layers", type=int, help="decoder layers (default: --layers)")
    flag("--dropout", type=float, help="dropout rate")
    flag("--norm-first", action="store_true", help="pre-LN layers instead of the paper's post-LN")

    group = parser.add_argument_group("training")
    flag("--batch-size", type=int, help="sentence pairs per step")
    flag("--steps", type=int, help=f"total optimizer steps, counting those before a resume (default: "
                                   f"{DEFAULT_STEPS} unless --epochs is given)")
    flag("--epochs", type=float, help="stop after this many passes over the training pairs")
    flag("--time-budget", type=float, metavar="SECONDS", help="stop training after this long, then evaluate")
    flag("--schedule", choices=("noam", "cosine"), help="the paper's warmup + 1/sqrt(step) decay, or warmup + cosine")
    flag("--lr", type=float, help="peak learning rate (default: the paper's d_model^-0.5 * warmup^-0.5)")
    flag("--warmup", type=int, help="warmup steps")
    flag("--label-smoothing", type=float, help="label smoothing")
    flag("--clip", type=float, help="clip the gradient norm to this (0: no clipping)")

    group = parser.add_argument_group("run")
    flag("--seed", type=int, help="seed for data, initialisation, dropout and batch order")
    flag("--device", help="cpu or cuda (default: $MINIGRAD_DEVICE, else cpu)")
    flag("--out", metavar="DIR", help="run directory (default: runs/<task or data file name>)")
    flag("--resume", nargs="?", const="", metavar="PATH",
         help="continue from a checkpoint file or run directory (alone: the run directory's last.ckpt), "
              "in that run's directory")
    flag("--overwrite", action="store_true",
         help="start a new run in --out even though it holds one: its checkpoint, metrics and plots go")
    flag("--save-every", type=int, help="save a checkpoint every N steps (0: only at the end)")
    flag("--log-every", type=int, help="log averaged training metrics every N steps")
    flag("--eval-every", type=int, help="teacher-forced validation loss every N steps (0: only at the end)")
    flag("--examples", type=int, help="example translations printed at the end")
    flag("--beam", type=int, help="also evaluate with beam search of this width")
    flag("--decode-batch-size", type=int, help="sentences decoded at once")
    flag("--attention-sentence", metavar="TEXT", help="sentence for attention.png (default: first held-out one)")
    flag("--no-progress", dest="progress", action="store_false", help="no progress bar")


def resolve_train_settings(flags: dict, saved: dict | None) -> dict:
    """The settings of this run: `flags` (the parsed command line, None where a flag was not given),
    else the checkpoint's `saved` settings (when resuming), else the defaults. Every number is
    checked (flag_checks.FLAG_RULES): a bad one is a UsageError naming its flag."""
    given = {key: value for key, value in flags.items()
             if key in TRAIN_DEFAULTS and value is not None
             and not (key in ("skip_bad_lines", "norm_first", "joint_vocab") and value is False)
             and not (key == "progress" and value is True)}
    if saved is not None:
        changed = sorted(key for key, value in given.items()
                         if key not in CHANGEABLE_ON_RESUME and saved.get(key) != value)
        if changed:
            names = ", ".join("--" + key.replace("_", "-") for key in changed)
            raise UsageError(f"cannot change {names} when resuming (the checkpoint fixes the model, data and "
                             f"optimisation); start a new run with --out instead")
        settings = {**TRAIN_DEFAULTS, **saved, **given}
    else:
        settings = {**TRAIN_DEFAULTS, **given}
    if settings["data"] is not None:
        settings["task"] = None
        settings["data"] = str(Path(settings["data"]).resolve()) if saved is None else settings["data"]
    settings["device"] = given.get("device") or minigrad.get_default_device()
    if settings["steps"] is None and settings["epochs"] is None:
        settings["steps"] = DEFAULT_STEPS
    check_flags(settings)
    check_tokenizer_flags(settings, given)
    if settings["d_model"] % settings["heads"]:
        raise UsageError(f"--d-model {settings['d_model']} is not divisible by --heads {settings['heads']}")
    return settings


def check_steps_left(step: int, total_steps: int, epochs_done: float, settings: dict, checkpoint):
    """A resumed run must have steps left to train; a finished one is refused with the ways on."""
    if step >= total_steps or settings["epochs"] is not None and epochs_done >= settings["epochs"]:
        raise UsageError(f"{checkpoint} is at step {step} (epoch {epochs_done:.2f}), where this run ends: give a "
                         f"larger --steps or --epochs to train on, or score it with "
                         f"`python train.py evaluate --checkpoint {checkpoint}`")
