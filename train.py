#!/usr/bin/env python
"""Train a Transformer translator, evaluate it, and translate with it.

    python train.py                              # the built-in toy language pair (a few minutes on 2 CPU cores)
    python train.py --task reverse               # other built-in tasks: copy, reverse
    python train.py --data pairs.tsv             # your own "source<TAB>target" file
    python train.py --resume runs/toy --steps 4000        # carry on where a run stopped
    python train.py translate --checkpoint runs/toy "the big dog sees a cat"
    python train.py evaluate --checkpoint runs/toy --beam 4

A run writes into its run directory (runs/<task> unless --out says otherwise): last.ckpt
(model, optimizer, schedule, vocabularies, settings, data position and random states, saved
atomically every --save-every steps, at the end and on Ctrl-C), metrics.jsonl (one JSON record
per log line), and, when matplotlib is installed, curves.png and attention.png.

The file reads top to bottom: command line, data, model, the batch stream, one training step,
evaluation, checkpoints, then the three commands (train, evaluate, translate).
"""
from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import math
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

if __name__ == "__main__":
    # One BLAS thread unless you say otherwise (OPENBLAS_NUM_THREADS=2 python train.py): this
    # model's matrices are small, so a second thread gains little on an idle machine, and BLAS
    # threads that spin-wait for a busy core made training 2-14x slower when other processes
    # shared a 2-core machine (docs/benchmarks.md). Must be set before NumPy is imported.
    for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_variable, "1")


import minigrad
from minigrad import functional as F
from transformer import metrics, plots
from transformer.data import (DataError, Vocab, batch_order_generator, detokenize, load_tsv, make_batches, pad_batch,
                              split_pairs, tokenize)
from transformer.toy_tasks import TASKS, make_task

CHECKPOINT_NAME = "last.ckpt"
METRICS_NAME = "metrics.jsonl"
EXIT_USAGE, EXIT_INTERRUPTED = 2, 130


class UsageError(Exception):
    """A problem the user can fix (bad flag, missing checkpoint, no GPU): one line, exit code 2."""


# ================================================================================================
# Command line
# ================================================================================================

# Defaults of `train`, sized so that the toy task reaches >= 95% exact match on 2 CPU cores in a few
# minutes (see docs/benchmarks.md). Flags default to None in argparse so that a resumed run can tell
# "given on the command line" from "not given" and take the rest from the checkpoint.
TRAIN_DEFAULTS = dict(
    task="toy", data=None, tokenizer="word", min_freq=1, valid_size=None, train_size=50_000,
    skip_bad_lines=False, max_len=256,
    d_model=128, heads=4, d_ff=512, layers=2, encoder_layers=None, decoder_layers=None, dropout=0.1,
    norm_first=False,
    batch_size=64, steps=None, epochs=None, time_budget=480.0, lr=None, warmup=400, schedule="noam",
    label_smoothing=0.1, clip=1.0,
    seed=0, device=None, out=None, save_every=500, log_every=10, eval_every=500, examples=5,
    beam=None, decode_batch_size=250, attention_sentence=None, progress=True,
)
DEFAULT_STEPS = 2400           # when neither --steps nor --epochs is given
DEFAULT_VALID_SIZE = 1000      # built-in tasks; a data file holds out min(1000, 10%)
# What a resumed run may change; everything else (model, data, optimisation) comes from the checkpoint.
CHANGEABLE_ON_RESUME = {"steps", "epochs", "time_budget", "device", "out", "save_every", "log_every", "eval_every",
                        "examples", "beam", "decode_batch_size", "attention_sentence", "progress"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train.py", description="Train (default), evaluate or use a Transformer translator.",
        epilog="`python train.py` alone trains on the built-in toy task. "
               "See `python train.py train --help` for every training flag.")
    commands = parser.add_subparsers(dest="command", metavar="{train,evaluate,translate}")

    train = commands.add_parser("train", help="train a model (the default command)",
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                description=__doc__.split("\n\n")[0])

    def flag(*names, **kwargs):
        key = names[0].lstrip("-").replace("-", "_")
        if key in TRAIN_DEFAULTS and TRAIN_DEFAULTS[key] is not None and kwargs.get("action") != "store_true":
            kwargs["help"] = kwargs.get("help", "") + f" (default: {TRAIN_DEFAULTS[key]})"
        kwargs.setdefault("default", None)
        group.add_argument(*names, **kwargs)

    group = train.add_argument_group("data")
    flag("--task", choices=TASKS, help="built-in task, generated offline")
    flag("--data", metavar="FILE.tsv", help="your own pairs: one 'source<TAB>target' per line (UTF-8)")
    flag("--tokenizer", choices=("word", "char"), help="split sentences into words or characters")
    flag("--min-freq", type=int, help="tokens seen fewer times in training become <unk>")
    flag("--valid-size", type=int, help="held-out pairs (default: 1000 for tasks, min(1000, 10%%) for a file)")
    flag("--train-size", type=int, help="training pairs generated for a built-in task")
    flag("--skip-bad-lines", action="store_true", help="skip (and count) malformed lines instead of stopping")
    flag("--max-len", type=int, help="longest sentence in tokens the model handles; longer pairs are skipped")

    group = train.add_argument_group("model")
    flag("--d-model", type=int, help="width of every token vector")
    flag("--heads", type=int, help="attention heads")
    flag("--d-ff", type=int, help="hidden width of the feed-forward blocks")
    flag("--layers", type=int, help="layers on each side")
    flag("--encoder-layers", type=int, help="encoder layers (default: --layers)")
    flag("--decoder-layers", type=int, help="decoder layers (default: --layers)")
    flag("--dropout", type=float, help="dropout rate")
    flag("--norm-first", action="store_true", help="pre-LN layers instead of the paper's post-LN")

    group = train.add_argument_group("training")
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

    group = train.add_argument_group("run")
    flag("--seed", type=int, help="seed for data, initialisation, dropout and batch order")
    flag("--device", help="cpu or cuda (default: $MINIGRAD_DEVICE, else cpu)")
    flag("--out", metavar="DIR", help="run directory (default: runs/<task or data file name>)")
    flag("--resume", nargs="?", const="", metavar="PATH",
         help="continue from a checkpoint file or run directory (alone: the run directory's last.ckpt)")
    flag("--save-every", type=int, help="save a checkpoint every N steps (0: only at the end)")
    flag("--log-every", type=int, help="log averaged training metrics every N steps")
    flag("--eval-every", type=int, help="teacher-forced validation loss every N steps (0: only at the end)")
    flag("--examples", type=int, help="example translations printed at the end")
    flag("--beam", type=int, help="also evaluate with beam search of this width")
    flag("--decode-batch-size", type=int, help="sentences decoded at once")
    flag("--attention-sentence", metavar="TEXT", help="sentence for attention.png (default: first held-out one)")
    flag("--no-progress", dest="progress", action="store_false", help="no progress bar")

    evaluate = commands.add_parser("evaluate", help="score a checkpoint on held-out pairs or a file")
    evaluate.add_argument("--checkpoint", required=True, metavar="PATH", help="checkpoint file or run directory")
    evaluate.add_argument("--data", metavar="FILE.tsv", help="pairs to score (default: the run's held-out pairs)")
    evaluate.add_argument("--skip-bad-lines", action="store_true", help="skip malformed lines of --data")
    evaluate.add_argument("--beam", type=int, help="beam width (default: greedy decoding)")
    evaluate.add_argument("--limit", type=int, help="score only the first N pairs")
    evaluate.add_argument("--examples", type=int, default=5, help="example translations printed (default: 5)")
    evaluate.add_argument("--device", help="cpu or cuda (default: $MINIGRAD_DEVICE, else cpu)")
    evaluate.add_argument("--decode-batch-size", type=int, default=250, help="sentences decoded at once")

    translate = commands.add_parser("translate", help="translate sentences given as arguments or on stdin")
    translate.add_argument("--checkpoint", required=True, metavar="PATH", help="checkpoint file or run directory")
    translate.add_argument("sentences", nargs="*", help="sentences (default: one per line from stdin)")
    translate.add_argument("--beam", type=int, help="beam width (default: greedy decoding)")
    translate.add_argument("--device", help="cpu or cuda (default: $MINIGRAD_DEVICE, else cpu)")
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    """`train` is the default command: `train.py --steps 10` means `train.py train --steps 10`."""
    if not argv or argv[0] not in ("train", "evaluate", "translate", "-h", "--help"):
        argv = ["train"] + list(argv)
    return build_parser().parse_args(argv)


def resolve_train_settings(args: argparse.Namespace, saved: dict | None) -> dict:
    """The settings of this run: command line, else the checkpoint's (when resuming), else the defaults."""
    given = {key: value for key, value in vars(args).items()
             if key in TRAIN_DEFAULTS and value is not None and not (key in ("skip_bad_lines", "norm_first")
                                                                       and value is False)
             and not (key == "progress" and value is True)}
    if saved is not None:
        changed = sorted(key for key, value in given.items()
                         if key not in CHANGEABLE_ON_RESUME and saved.get(key) != value)
        if changed:
            flags = ", ".join("--" + key.replace("_", "-") for key in changed)
            raise UsageError(f"cannot change {flags} when resuming (the checkpoint fixes the model, data and "
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
    for key in ("d_model", "heads", "d_ff", "layers", "batch_size", "warmup", "max_len", "decode_batch_size"):
        if settings[key] < 1:
            raise UsageError(f"--{key.replace('_', '-')} must be at least 1, got {settings[key]}")
    if settings["d_model"] % settings["heads"]:
        raise UsageError(f"--d-model {settings['d_model']} is not divisible by --heads {settings['heads']}")
    if not 0.0 <= settings["dropout"] < 1.0 or not 0.0 <= settings["label_smoothing"] < 1.0:
        raise UsageError("--dropout and --label-smoothing must be in [0, 1)")
    return settings


# ================================================================================================
# Data: sentence pairs -> vocabularies -> id lists
# ================================================================================================

@dataclass
class Corpus:
    train_pairs: list
    valid_pairs: list
    src_vocab: Vocab
    tgt_vocab: Vocab
    train_src: list          # id lists, no <bos>/<eos>
    train_tgt: list
    tokenizer: str


def read_pairs(settings: dict) -> tuple[list, list]:
    """(train, valid) sentence pairs from a built-in task or a file, the same every time for the same settings."""
    if settings["data"] is None:
        valid_size = DEFAULT_VALID_SIZE if settings["valid_size"] is None else settings["valid_size"]
        return make_task(settings["task"], settings["train_size"], valid_size, seed=settings["seed"])
    pairs, n_skipped = load_tsv(settings["data"], skip_bad_lines=settings["skip_bad_lines"])
    if n_skipped:
        print(f"skipped {n_skipped} bad line{'s' * (n_skipped != 1)} in {settings['data']}")
    valid_size = settings["valid_size"]
    if valid_size is None:
        valid_size = min(DEFAULT_VALID_SIZE, len(pairs) // 10)
    try:
        return split_pairs(pairs, valid_size, seed=settings["seed"])
    except ValueError as error:
        raise UsageError(f"--valid-size: {error}") from None


def prepare_corpus(settings: dict) -> Corpus:
    train_pairs, valid_pairs = read_pairs(settings)
    kind = settings["tokenizer"]
    longest = settings["max_len"] - 2            # room for <bos>/<eos>
    tokenized = [(tokenize(s, kind), tokenize(t, kind)) for s, t in train_pairs]
    kept = [(s, t) for s, t in tokenized if len(s) <= longest and len(t) <= longest]
    if len(kept) < len(tokenized):
        print(f"skipped {len(tokenized) - len(kept)} training pairs longer than --max-len {settings['max_len']}")
    if not kept:
        raise UsageError("no training pairs left")
    src_vocab = Vocab.build((s for s, _ in kept), min_freq=settings["min_freq"])
    tgt_vocab = Vocab.build((t for _, t in kept), min_freq=settings["min_freq"])
    return Corpus(train_pairs, valid_pairs, src_vocab, tgt_vocab,
                  [src_vocab.encode(s) for s, _ in kept], [tgt_vocab.encode(t) for _, t in kept], kind)


# ================================================================================================
# Model, optimizer, schedule
# ================================================================================================

def check_device(device: str) -> str:
    """'cpu' or a usable 'cuda[:N]', else a UsageError that says why in one line."""
    if device == "cpu":
        return device
    if not device.startswith("cuda"):
        raise UsageError(f"--device {device}: unknown device; use cpu or cuda")
    if not minigrad.cuda.is_available():
        if importlib.util.find_spec("cupy") is None:
            why = "CuPy is not installed (pip install \"minigrad[gpu]\" on a machine with an NVIDIA GPU)"
        else:
            why = "CuPy is installed but finds no usable NVIDIA GPU"
        raise UsageError(f"--device {device}: {why}; use --device cpu")
    return device


def build_model(config: dict, device: str):
    from transformer.model import Transformer
    return Transformer(**config).to(device)


def model_config(settings: dict, corpus: Corpus) -> dict:
    layers = settings["layers"]
    return dict(src_vocab_size=len(corpus.src_vocab), tgt_vocab_size=len(corpus.tgt_vocab),
                d_model=settings["d_model"], n_heads=settings["heads"], d_ff=settings["d_ff"],
                n_encoder_layers=settings["encoder_layers"] or layers,
                n_decoder_layers=settings["decoder_layers"] or layers,
                dropout=settings["dropout"], norm_first=settings["norm_first"], max_len=settings["max_len"],
                pad_id=corpus.src_vocab.pad_id)


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


# ================================================================================================
# The batch stream: epoch after epoch, resumable mid-epoch
# ================================================================================================

class BatchStream:
    """Training batches forever, each epoch reshuffled (and re-bucketed) by one NumPy generator.

    Its position is (epoch, index of the next batch) plus the generator's state at the start of
    that epoch: a resumed run rebuilds the epoch from that state, which gives the very same
    batches, and skips to the index. The generator then ends up where the uninterrupted run's is.
    """

    def __init__(self, corpus: Corpus, batch_size: int, seed: int):
        self.corpus, self.batch_size = corpus, batch_size
        self.rng = batch_order_generator(seed)
        self.epoch, self.index = 0, 0
        self._batches = None
        self._epoch_start_state = None

    def _start_epoch(self):
        self._epoch_start_state = copy.deepcopy(self.rng.bit_generator.state)
        vocab = self.corpus.tgt_vocab
        self._batches = make_batches(self.corpus.train_src, self.corpus.train_tgt, self.batch_size, vocab.pad_id,
                                     vocab.bos_id, vocab.eos_id, shuffle=True, rng=self.rng)

    def batches_per_epoch(self) -> int:
        return math.ceil(len(self.corpus.train_src) / self.batch_size)

    def next(self):
        if self._batches is None:
            self._start_epoch()
        batch = self._batches[self.index]
        self.index += 1
        if self.index == len(self._batches):
            self.epoch, self.index, self._batches = self.epoch + 1, 0, None
        return batch

    @property
    def epochs_done(self) -> float:
        return self.epoch + self.index / self.batches_per_epoch()

    def state_dict(self) -> dict:
        start = self._epoch_start_state if self._batches is not None else self.rng.bit_generator.state
        return {"epoch": self.epoch, "index": self.index, "epoch_start_rng": copy.deepcopy(start)}

    def load_state_dict(self, state: dict):
        self.epoch, self.index = state["epoch"], state["index"]
        self.rng.bit_generator.state = state["epoch_start_rng"]
        self._batches = None
        if self.index:
            self._start_epoch()


# ================================================================================================
# One training step, and teacher-forced validation
# ================================================================================================

def batch_tensors(batch, device):
    return (minigrad.tensor(batch.src, device=device), minigrad.tensor(batch.tgt_in, device=device),
            minigrad.tensor(batch.tgt_out, device=device))


def token_losses(logits, tgt_out, pad_id: int, label_smoothing: float):
    """(label-smoothed loss to train on, plain NLL, correctly predicted tokens), all per the batch's tokens.

    The NLL and the count need no gradient; they are what shows progress, since the smoothed loss
    cannot fall below the entropy of the smoothed target distribution.
    """
    flat_logits = logits.reshape(-1, logits.shape[-1])
    flat_target = tgt_out.reshape(-1)
    loss = F.cross_entropy(flat_logits, flat_target, ignore_index=pad_id, label_smoothing=label_smoothing)
    with minigrad.no_grad():
        detached = flat_logits.detach()
        nll = F.cross_entropy(detached, flat_target, ignore_index=pad_id) if label_smoothing else loss.detach()
        correct = ((detached.argmax(-1) == flat_target) & (flat_target != pad_id)).sum()
    return loss, nll, correct


def train_step(model, batch, optimizer, schedule, settings, device) -> dict:
    src, tgt_in, tgt_out = batch_tensors(batch, device)
    logits = model(src, tgt_in)
    loss, nll, correct = token_losses(logits, tgt_out, model.pad_id, settings["label_smoothing"])
    optimizer.zero_grad()
    loss.backward()
    if settings["clip"]:
        minigrad.optim.clip_grad_norm_(model.parameters(), settings["clip"])
    lr = schedule.get_last_lr()[0]       # the rate this update uses
    optimizer.step()
    schedule.step()
    return {"loss": loss.detach(), "nll": nll, "correct": correct, "lr": lr, "tokens": batch.n_tokens}


def validation_losses(model, pairs_ids, tgt_vocab, settings, device) -> dict:
    """Teacher-forced loss, NLL and token accuracy on held-out pairs (no decoding, so it is cheap)."""
    src_ids, tgt_ids = pairs_ids
    batches = make_batches(src_ids, tgt_ids, settings["batch_size"], tgt_vocab.pad_id, tgt_vocab.bos_id,
                           tgt_vocab.eos_id, shuffle=False)
    totals = {"loss": 0.0, "nll": 0.0, "correct": 0, "tokens": 0}
    model.eval()
    with minigrad.no_grad():
        for batch in batches:
            src, tgt_in, tgt_out = batch_tensors(batch, device)
            loss, nll, correct = token_losses(model(src, tgt_in), tgt_out, model.pad_id, settings["label_smoothing"])
            totals["loss"] += loss.item() * batch.n_tokens
            totals["nll"] += nll.item() * batch.n_tokens
            totals["correct"] += int(correct.item())
            totals["tokens"] += batch.n_tokens
    model.train()
    tokens = max(totals["tokens"], 1)
    return {"loss": totals["loss"] / tokens, "nll": totals["nll"] / tokens, "token_accuracy": totals["correct"] / tokens}


# ================================================================================================
# Decoding and scoring
# ================================================================================================

def translate_ids(model, sources: list, tgt_vocab: Vocab, device, beam: int | None = None,
                  batch_size: int = 250) -> list:
    """Output id lists (no <bos>/<eos>) for source id lists, decoded in batches of similar length."""
    from transformer.decoding import beam_search, greedy_decode
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    outputs = [None] * len(sources)
    model.eval()
    with minigrad.no_grad():
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            src = minigrad.tensor(pad_batch([sources[i] for i in chunk], model.pad_id), device=device)
            max_len = min(model.max_len - 1, 2 * src.shape[1] + 10)
            if beam and beam > 1:
                decoded = beam_search(model, src, beam_size=beam, max_len=max_len, bos_id=tgt_vocab.bos_id,
                                      eos_id=tgt_vocab.eos_id)
            else:
                decoded = greedy_decode(model, src, max_len, tgt_vocab.bos_id, tgt_vocab.eos_id)
            for i, ids in zip(chunk, decoded):
                outputs[i] = [int(token) for token in ids]
    return outputs


def encode_sources(sentences, src_vocab: Vocab, kind: str, max_len: int) -> list:
    return [src_vocab.encode(tokenize(s, kind)[:max_len - 2]) or [src_vocab.unk_id] for s in sentences]


def score_pairs(model, pairs, src_vocab, tgt_vocab, kind, device, beam=None, batch_size=250) -> tuple[dict, list]:
    """(scores, hypotheses as text) of decoding every source of `pairs` against its reference."""
    sources = encode_sources([s for s, _ in pairs], src_vocab, kind, model.max_len)
    outputs = translate_ids(model, sources, tgt_vocab, device, beam=beam, batch_size=batch_size)
    hypotheses = [tgt_vocab.decode(ids) for ids in outputs]
    references = [tokenize(t, kind) for _, t in pairs]
    texts = [detokenize(h, kind) for h in hypotheses]
    scores = metrics.translation_scores(hypotheses, references, texts, [t for _, t in pairs])
    return scores, texts


def print_examples(pairs, hypotheses, count: int, kind: str):
    for (source, reference), hypothesis in list(zip(pairs, hypotheses))[:count]:
        mark = "ok" if tokenize(hypothesis, kind) == tokenize(reference, kind) else "WRONG"
        print(f"  source:     {source}\n  reference:  {reference}\n  model:      {hypothesis}   [{mark}]")


def format_scores(scores: dict) -> str:
    text = (f"exact match {100 * scores['exact_match']:.1f}%  token accuracy {100 * scores['token_accuracy']:.1f}%  "
            f"BLEU {scores['bleu']:.1f}")
    if "chrf" in scores:
        text += f"  chrF {scores['chrf']:.1f}"
    else:
        text += "  (chrF needs sacrebleu: pip install \"minigrad[metrics]\"; BLEU is the built-in one)"
    return text + f"  on {scores['sentences']} sentences"


# ================================================================================================
# Checkpoints and the metrics log
# ================================================================================================

def checkpoint_path(path: str | Path) -> Path:
    """A checkpoint file, or a run directory holding last.ckpt."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise UsageError(f"{path}: no checkpoint there")
    return path


def save_checkpoint(path: Path, model, optimizer, schedule, corpus: Corpus, settings: dict, step: int,
                    stream: BatchStream):
    """Everything needed to resume exactly. Settings, data position and random states are JSON text,
    because they hold None, booleans and 128-bit generator states."""
    minigrad.save({
        "format": "minigrad-translator", "version": 1,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(),
        "src_vocab": corpus.src_vocab.to_list(),
        "tgt_vocab": corpus.tgt_vocab.to_list(),
        "model_config": json.dumps(model.config),
        "settings": json.dumps(settings),
        "step": step,
        "data_position": json.dumps(stream.state_dict()),
        "minigrad_rng": json.dumps(minigrad.get_rng_state()),
    }, str(path))


def load_checkpoint(path: str | Path) -> dict:
    path = checkpoint_path(path)
    try:
        state = minigrad.load(str(path))
    except Exception as error:  # a truncated or foreign file: say so in one line
        raise UsageError(f"{path}: not a readable checkpoint ({error})") from None
    if not isinstance(state, dict) or state.get("format") != "minigrad-translator":
        raise UsageError(f"{path}: not a train.py checkpoint")
    for key in ("model_config", "settings", "data_position", "minigrad_rng"):
        state[key] = json.loads(state[key])
    state["path"] = path
    return state


def restore_model(state: dict, device: str):
    model = build_model(state["model_config"], device)
    model.load_state_dict(state["model"])
    model.eval()
    return model, Vocab.from_list(state["src_vocab"]), Vocab.from_list(state["tgt_vocab"])


def append_records(run_dir: Path, records: list):
    with open(run_dir / METRICS_NAME, "a", encoding="utf-8") as log:
        for record in records:
            log.write(json.dumps(record) + "\n")


def read_records(run_dir: Path) -> list:
    path = run_dir / METRICS_NAME
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# ================================================================================================
# Ctrl-C: finish the step, save, exit
# ================================================================================================

class StopOnInterrupt:
    """While active, the first Ctrl-C (SIGINT) only asks the training loop to stop after the current
    step, so the checkpoint it then saves is consistent; a second Ctrl-C stops at once."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:        # not the main thread: Ctrl-C keeps its default behaviour
            self._previous = None
        return self

    def __exit__(self, *exc_info):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


# ================================================================================================
# train
# ================================================================================================

def run_train(args: argparse.Namespace) -> int:
    saved_state = None
    if args.resume is not None:
        resume_from = args.resume or args.out or default_run_dir(args.task or TRAIN_DEFAULTS["task"], args.data)
        saved_state = load_checkpoint(resume_from)
    settings = resolve_train_settings(args, saved_state["settings"] if saved_state else None)
    device = check_device(settings["device"])
    run_dir = Path(settings["out"] or (saved_state["path"].parent if saved_state
                                      else default_run_dir(settings["task"], settings["data"])))
    settings["out"] = str(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)

    minigrad.manual_seed(settings["seed"])
    corpus = prepare_corpus(settings)
    if saved_state:  # the vocabularies of the checkpoint, as saved
        corpus.src_vocab = Vocab.from_list(saved_state["src_vocab"])
        corpus.tgt_vocab = Vocab.from_list(saved_state["tgt_vocab"])
    stream = BatchStream(corpus, settings["batch_size"], settings["seed"])
    total_steps = settings["steps"] or math.ceil(settings["epochs"] * stream.batches_per_epoch())
    if settings["epochs"] is not None:
        total_steps = min(total_steps, math.ceil(settings["epochs"] * stream.batches_per_epoch()))
    config = model_config(settings, corpus) if not saved_state else saved_state["model_config"]
    model = build_model(config, device)
    optimizer, schedule = build_optimizer(model, settings, total_steps)
    step = 0
    if saved_state:
        model.load_state_dict(saved_state["model"])
        optimizer.load_state_dict(saved_state["optimizer"])
        schedule.load_state_dict(saved_state["schedule"])
        stream.load_state_dict(saved_state["data_position"])
        minigrad.set_rng_state(saved_state["minigrad_rng"])
        step = saved_state["step"]
        print(f"resumed from {saved_state['path']} at step {step} (epoch {stream.epochs_done:.2f})")
    model.train()

    where = settings["data"] or f"built-in task '{settings['task']}'"
    print(f"data: {where}: {len(corpus.train_src)} training pairs, {len(corpus.valid_pairs)} held out; "
          f"vocabularies: {len(corpus.src_vocab)} source, {len(corpus.tgt_vocab)} target tokens")
    print(f"model: {model.num_parameters():,} parameters ({config['n_encoder_layers']}+{config['n_decoder_layers']} "
          f"layers, d_model {config['d_model']}, {config['n_heads']} heads, d_ff {config['d_ff']}) on {device}; "
          f"training up to {total_steps} steps or {settings['time_budget']:.0f} s; run directory {run_dir}")
    valid_ids = (encode_sources([s for s, _ in corpus.valid_pairs], corpus.src_vocab, corpus.tokenizer,
                                settings["max_len"]),
                 [corpus.tgt_vocab.encode(tokenize(t, corpus.tokenizer)[:settings["max_len"] - 2])
                  for _, t in corpus.valid_pairs])
    checkpoint = run_dir / CHECKPOINT_NAME

    def save():
        save_checkpoint(checkpoint, model, optimizer, schedule, corpus, settings, step, stream)

    def validate():
        if not corpus.valid_pairs:
            return
        record = {"kind": "valid", "step": step, **validation_losses(model, valid_ids, corpus.tgt_vocab,
                                                                     settings, device)}
        append_records(run_dir, [record])
        progress.write(f"step {step}: valid loss {record['loss']:.3f}  NLL {record['nll']:.3f}  "
                       f"token accuracy {100 * record['token_accuracy']:.1f}% (teacher-forced)")

    from tqdm import tqdm
    progress = tqdm(total=total_steps, initial=step, unit="step", disable=not settings["progress"],
                    dynamic_ncols=True, mininterval=0.5, file=sys.stderr)
    started = time.perf_counter()
    window = {"loss": 0.0, "nll": 0.0, "correct": 0, "tokens": 0, "steps": 0, "started": started}
    stop_reason = "step limit"

    def log(lr: float):
        if not window["steps"]:
            return
        now = time.perf_counter()
        tokens = window["tokens"]
        record = {"kind": "train", "step": step, "epoch": round(stream.epochs_done, 4),
                  "loss": float(window["loss"].item()) / tokens, "nll": float(window["nll"].item()) / tokens,
                  "token_accuracy": int(window["correct"].item()) / tokens, "lr": lr,
                  "tokens_per_s": tokens / max(now - window["started"], 1e-9), "elapsed_s": now - started}
        append_records(run_dir, [record])
        progress.set_postfix(loss=f"{record['loss']:.3f}", nll=f"{record['nll']:.3f}",
                             acc=f"{record['token_accuracy']:.3f}", lr=f"{lr:.2e}",
                             tok_s=f"{record['tokens_per_s']:.0f}", refresh=False)
        window.update(loss=0.0, nll=0.0, correct=0, tokens=0, steps=0, started=now)

    lr = schedule.get_last_lr()[0]
    with StopOnInterrupt() as interrupt:
        try:
            while True:
                if settings["epochs"] is not None and stream.epochs_done >= settings["epochs"]:
                    stop_reason = "epoch limit"
                    break
                if step >= total_steps:
                    break
                if time.perf_counter() - started > settings["time_budget"]:
                    stop_reason = f"time budget of {settings['time_budget']:.0f} s"
                    break
                if interrupt.requested:
                    break
                result = train_step(model, stream.next(), optimizer, schedule, settings, device)
                step += 1
                lr = result["lr"]
                n = result["tokens"]
                # Sums stay tensors (on the device) until log() reads them: no GPU sync every step.
                window["loss"] = window["loss"] + result["loss"] * n
                window["nll"] = window["nll"] + result["nll"] * n
                window["correct"] = window["correct"] + result["correct"]
                window["tokens"] += n
                window["steps"] += 1
                progress.update(1)
                if step % settings["log_every"] == 0:
                    log(lr)
                if settings["save_every"] and step % settings["save_every"] == 0:
                    save()
                if settings["eval_every"] and step % settings["eval_every"] == 0:
                    validate()
        except KeyboardInterrupt:      # a second Ctrl-C, mid-step: the state may be half updated
            progress.close()
            print(f"\ninterrupted again at step {step}: stopped without saving "
                  f"(the last checkpoint, if any, is {checkpoint})", file=sys.stderr)
            return EXIT_INTERRUPTED
        log(lr)
        save()
        if interrupt.requested:
            progress.close()
            print(f"interrupted at step {step}: checkpoint saved to {checkpoint}\n"
                  f"resume with: python train.py --resume {run_dir}", file=sys.stderr)
            return EXIT_INTERRUPTED
    progress.close()
    train_seconds = time.perf_counter() - started
    print(f"stopped after step {step} ({stop_reason}) in {train_seconds:.0f} s; checkpoint saved to {checkpoint}")
    if settings["eval_every"] == 0 or step % settings["eval_every"]:
        validate()

    if corpus.valid_pairs:
        evaluation_started = time.perf_counter()
        scores, hypotheses = score_pairs(model, corpus.valid_pairs, corpus.src_vocab, corpus.tgt_vocab,
                                         corpus.tokenizer, device, batch_size=settings["decode_batch_size"])
        if settings["examples"]:
            print("\nexample translations (held-out, greedy):")
        print_examples(corpus.valid_pairs, hypotheses, settings["examples"], corpus.tokenizer)
        record = {"kind": "eval", "step": step, "decoding": "greedy", "train_seconds": train_seconds, **scores}
        print(f"\nheld-out, greedy: {format_scores(scores)}")
        if settings["beam"] and settings["beam"] > 1:
            beam_scores, _ = score_pairs(model, corpus.valid_pairs, corpus.src_vocab, corpus.tgt_vocab,
                                         corpus.tokenizer, device, beam=settings["beam"],
                                         batch_size=settings["decode_batch_size"])
            append_records(run_dir, [{"kind": "eval", "step": step, "decoding": f"beam {settings['beam']}",
                                      **beam_scores}])
            print(f"held-out, beam {settings['beam']}: {format_scores(beam_scores)}")
        record["eval_seconds"] = time.perf_counter() - evaluation_started
        append_records(run_dir, [record])
    else:
        print("no held-out pairs (--valid-size 0), so no evaluation")
    draw_pictures(run_dir, model, corpus, settings, device)
    return 0


def default_run_dir(task: str | None, data: str | None) -> Path:
    return Path("runs") / (Path(data).stem if data else task)


def draw_pictures(run_dir: Path, model, corpus: Corpus, settings: dict, device):
    if not plots.available():
        print("note: matplotlib is not installed, so no plots were drawn (pip install \"minigrad[plots]\")")
        return
    curves = plots.training_curves(read_records(run_dir), run_dir / "curves.png")
    sentence = settings["attention_sentence"] or (corpus.valid_pairs[0][0] if corpus.valid_pairs
                                                  else corpus.train_pairs[0][0])
    source_ids = encode_sources([sentence], corpus.src_vocab, corpus.tokenizer, model.max_len)[0]
    output_ids = translate_ids(model, [source_ids], corpus.tgt_vocab, device)[0]
    with minigrad.no_grad():
        src = minigrad.tensor([source_ids], device=device)
        tgt_in = minigrad.tensor([[corpus.tgt_vocab.bos_id] + output_ids], device=device)
        _, attention = model(src, tgt_in, return_attention=True)
    weights = attention["cross"][-1].numpy()[0]       # last decoder layer: (heads, T, S)
    source_tokens = corpus.src_vocab.decode(source_ids, strip_specials=False)
    output_tokens = corpus.tgt_vocab.decode(output_ids, strip_specials=False) + ["<eos>"]
    heatmap = plots.cross_attention(weights, source_tokens, output_tokens, run_dir / "attention.png",
                                    title=f"cross-attention, last decoder layer: \"{sentence}\"")
    print(f"plots: {curves}, {heatmap}")


# ================================================================================================
# evaluate, translate
# ================================================================================================

def run_evaluate(args: argparse.Namespace) -> int:
    device = check_device(args.device or minigrad.get_default_device())
    state = load_checkpoint(args.checkpoint)
    model, src_vocab, tgt_vocab = restore_model(state, device)
    settings = state["settings"]
    if args.data:
        pairs, n_skipped = load_tsv(args.data, skip_bad_lines=args.skip_bad_lines)
        if n_skipped:
            print(f"skipped {n_skipped} bad line{'s' * (n_skipped != 1)} in {args.data}")
        where = args.data
    else:
        pairs = read_pairs(settings)[1]
        where = "the run's held-out pairs"
        if not pairs:
            raise UsageError("the run held out no pairs; pass --data FILE to score")
    if args.limit:
        pairs = pairs[:args.limit]
    decoding = f"beam {args.beam}" if args.beam and args.beam > 1 else "greedy"
    scores, hypotheses = score_pairs(model, pairs, src_vocab, tgt_vocab, settings["tokenizer"], device,
                                     beam=args.beam, batch_size=args.decode_batch_size)
    print(f"checkpoint {state['path']} (step {state['step']}), {where}, {decoding} decoding")
    print_examples(pairs, hypotheses, args.examples, settings["tokenizer"])
    print(format_scores(scores))
    return 0


def run_translate(args: argparse.Namespace) -> int:
    device = check_device(args.device or minigrad.get_default_device())
    state = load_checkpoint(args.checkpoint)
    model, src_vocab, tgt_vocab = restore_model(state, device)
    kind = state["settings"]["tokenizer"]
    sentences = args.sentences or [line.rstrip("\n") for line in sys.stdin]
    texts = [s for s in sentences if s.strip()]
    unknown = sorted({token for s in texts for token in tokenize(s, kind) if token not in src_vocab})
    if unknown:
        print(f"note: not in the training vocabulary, read as <unk>: {' '.join(unknown)}", file=sys.stderr)
    outputs = translate_ids(model, encode_sources(texts, src_vocab, kind, model.max_len), tgt_vocab, device,
                            beam=args.beam) if texts else []
    translated = iter(detokenize(tgt_vocab.decode(ids), kind) for ids in outputs)
    for sentence in sentences:
        print(next(translated) if sentence.strip() else "")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    command = {"evaluate": run_evaluate, "translate": run_translate}.get(args.command, run_train)
    try:
        return command(args)
    except (UsageError, DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
