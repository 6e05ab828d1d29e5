"""Exact match after so many seconds of training: minigrad against a PyTorch reference trainer, for
word, character and subword tokens, on the same data, batches, initial weights and recipe.

    python benchmarks/morph_pairs.py --out /tmp/morph.tsv
    python benchmarks/time_to_accuracy.py --data /tmp/morph.tsv --tokenizer bpe --side-by-side \\
        --marks 60,120,300 --out /tmp/tta.jsonl

What is the same for both trainers: the corpus (transformer.corpus.prepare_corpus on train.py's
settings, so the same vocabularies and held-out pairs as `train.py --data FILE`), the batches
(transformer.batching.BatchStream, in the same order), the initial weights (our Transformer,
made as train.py makes it, copied into benchmarks/torch_translator.py's torch.nn.Transformer
twin), the recipe (train.py's train_step for minigrad; the same Adam, warmup schedule, label
smoothing and clipping in PyTorch) and one thread each (BLAS and torch).

The clock counts training only: at each of --marks seconds of training it stops, the model is
scored by greedy decoding of the first --eval-sentences held-out pairs, and it goes on. Both
trainers are scored by the same code, transformer.scoring.score_pairs on a minigrad model (the
PyTorch weights are copied back into one with torch_names.from_torch), so only training differs.
Besides exact match, token accuracy and BLEU, a record has exact_match_unseen: the exact match on
the scored sentences that hold a word (split at spaces, either side) never seen whole in training.
One JSON line per mark goes to stdout (and to --out). --side-by-side runs the two trainers at
the same time as two processes, one thread each, so that a shared machine slows both alike.
"""
from __future__ import annotations

import os

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):   # before NumPy loads
    os.environ.setdefault(_variable, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import minigrad  # noqa: E402
from transformer.batching import BatchStream  # noqa: E402
from transformer.corpus import prepare_corpus  # noqa: E402
from transformer.divergence import DivergenceGuard  # noqa: E402
from transformer.model import Transformer  # noqa: E402
from transformer.optimizer import build_optimizer  # noqa: E402
from transformer.run_settings import TRAIN_DEFAULTS, resolve_train_settings  # noqa: E402
from transformer.scoring import score_pairs  # noqa: E402

import train  # noqa: E402  (train.py: its train_step and model_config are the recipe measured here)

TRAINERS = ("minigrad", "torch")
# Settings this script passes on to train.py's (the rest are train.py's defaults).
SETTING_FLAGS = {"tokenizer": str, "vocab_size": int, "min_freq": int, "valid_size": int, "max_len": int,
                 "d_model": int, "heads": int, "d_ff": int, "layers": int, "dropout": float, "batch_size": int,
                 "warmup": int, "lr": float, "label_smoothing": float, "clip": float, "seed": int}


def run_settings(args) -> dict:
    """train.py's settings for this data and these flags (None: train.py's default)."""
    flags = {key: None for key in TRAIN_DEFAULTS}
    flags.update(data=args.data, device="cpu", progress=False)
    for key in SETTING_FLAGS:
        value = getattr(args, key)
        if value is None:
            continue
        if key not in TRAIN_DEFAULTS:
            raise SystemExit(f"error: --{key.replace('_', '-')}: this checkout's train.py has no such setting")
        flags[key] = value
    if args.joint_vocab:
        if "joint_vocab" not in TRAIN_DEFAULTS:
            raise SystemExit("error: --joint-vocab: this checkout's train.py has no such setting")
        flags["joint_vocab"] = True
    return resolve_train_settings(flags, None)


class Scorer:
    """Greedy-decoding scores of a minigrad model on the first `count` held-out pairs (training mode kept),
    and the exact match on those of them that hold a word (either side) never seen whole in training:
    the sentences a word vocabulary cannot get right, and subwords or characters can."""

    def __init__(self, corpus, count: int):
        self.corpus, self.pairs = corpus, corpus.valid_pairs[:count]
        seen = [{word for pair in corpus.train_pairs for word in pair[side].split()} for side in (0, 1)]
        self.unseen = [i for i, pair in enumerate(self.pairs)
                       if any(word not in seen[side] for side in (0, 1) for word in pair[side].split())]

    def __call__(self, model) -> dict:
        corpus = self.corpus
        scores, texts = score_pairs(model, self.pairs, corpus.src_vocab, corpus.tgt_vocab, corpus.tokenizer, "cpu")
        model.train()
        right = sum(texts[i] is not None and texts[i].split() == self.pairs[i][1].split() for i in self.unseen)
        scores["unseen_sentences"] = len(self.unseen)
        scores["exact_match_unseen"] = right / len(self.unseen) if self.unseen else None
        return scores


def minigrad_trainer(model, settings, stream):
    """(one update, the model to score): train.py's train_step and optimizer on our model."""
    optimizer, schedule = build_optimizer(model, settings, total_steps=settings["steps"])
    guard = DivergenceGuard(report=lambda note: print(note, file=sys.stderr))
    model.train()
    count = [0]

    def update() -> bool:
        done = train.train_step(model, stream.next(), optimizer, schedule, settings, "cpu", guard, count[0])
        count[0] += done is not None
        return done is not None

    return update, lambda: model


def torch_trainer(model, settings, stream):
    """(one update, the model to score): the PyTorch twin, started from our model's weights; scored as a
    minigrad model with its weights copied back."""
    import torch

    from torch_translator import TorchTrainer, TorchTranslator
    torch.set_num_threads(1)
    torch.manual_seed(settings["seed"])
    twin = TorchTranslator(model.config, model.state_dict())
    trainer = TorchTrainer(twin, settings)

    def update() -> bool:
        trainer.step(stream.next())
        return True

    def scored_model():
        model.load_state_dict(twin.our_state(model.config))
        return model

    return update, scored_model


def time_to_accuracy(args) -> list:
    """Train with one trainer until the last mark; one record per mark, each printed as it comes."""
    minigrad.tune_cpu()
    settings = run_settings(args)
    minigrad.manual_seed(settings["seed"])                    # as train.py: seed, corpus, batches, model
    corpus = prepare_corpus(settings)
    stream = BatchStream(corpus, settings["batch_size"], settings["seed"])
    model = Transformer(**train.model_config(settings, corpus))
    build = minigrad_trainer if args.trainer == "minigrad" else torch_trainer
    update, model_to_score = build(model, settings, stream)
    score = Scorer(corpus, args.eval_sentences)
    header = dict(trainer=args.trainer, tokenizer=settings["tokenizer"],
                  vocab=[len(corpus.src_vocab), len(corpus.tgt_vocab)], train_pairs=len(corpus.train_src),
                  eval_sentences=len(score.pairs), parameters=model.num_parameters())
    records, clock, steps = [], 0.0, 0
    for mark in args.marks:
        while clock < mark:
            started = time.perf_counter()
            steps += update()
            clock += time.perf_counter() - started
        evaluation_started = time.perf_counter()
        scores = score(model_to_score())
        record = dict(header, mark=mark, seconds=round(clock, 2), steps=steps,
                      epochs=round(stream.epochs_done, 3), exact_match=scores["exact_match"],
                      token_accuracy=scores["token_accuracy"], bleu=scores["bleu"],
                      unseen_sentences=scores["unseen_sentences"], exact_match_unseen=scores["exact_match_unseen"],
                      bleu_tokenize=scores.get("bleu_tokenize"),
                      eval_seconds=round(time.perf_counter() - evaluation_started, 2))
        print(json.dumps(record), flush=True)
        records.append(record)
    return records


def side_by_side(args, argv: list) -> list:
    """Both trainers at once, each in its own process with one thread; their records, in mark order."""
    child_argv = [a for a in argv if a != "--side-by-side"]
    if "--out" in child_argv:                 # the parent writes the file
        index = child_argv.index("--out")
        del child_argv[index:index + 2]
    child_argv = [a for a in child_argv if not a.startswith("--out=")]
    children = [subprocess.Popen([sys.executable, __file__, *child_argv, "--trainer", trainer],
                                 stdout=subprocess.PIPE, text=True) for trainer in TRAINERS]
    outputs = [child.communicate()[0] for child in children]
    failed = [trainer for trainer, child in zip(TRAINERS, children) if child.returncode]
    records = [json.loads(line) for output in outputs for line in output.splitlines() if line.startswith("{")]
    for record in sorted(records, key=lambda r: (r["mark"], r["trainer"])):
        print(json.dumps(record))
    if failed:
        raise SystemExit(f"error: the {' and '.join(failed)} trainer failed (its messages are above)")
    return records


def markdown_rows(records: list) -> str:
    """One table row per (tokenizer, trainer): exact match (steps) at each mark."""
    rows = {}
    for record in records:
        rows.setdefault((record["tokenizer"], record["trainer"]), []).append(record)
    lines = []
    for (tokenizer, trainer), marks in rows.items():
        cells = " | ".join(f"{100 * r['exact_match']:.1f}% ({r['steps']})" for r in sorted(marks, key=lambda r: r["mark"]))
        lines.append(f"| {tokenizer} | {trainer} | {cells} |")
    return "\n".join(lines)


def parse_marks(text: str) -> list:
    try:
        marks = [float(mark) for mark in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds separated by commas, like 60,120,300; got {text!r}")
    if not marks or any(mark <= 0 for mark in marks) or marks != sorted(marks):
        raise argparse.ArgumentTypeError(f"expected increasing positive seconds, like 60,120,300; got {text!r}")
    return marks


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, metavar="FILE.tsv", help="source<TAB>target pairs, as train.py --data")
    parser.add_argument("--trainer", choices=TRAINERS, default="minigrad", help="who trains (default: minigrad)")
    parser.add_argument("--side-by-side", action="store_true",
                        help="run both trainers at once, one process and one thread each")
    parser.add_argument("--marks", type=parse_marks, default=[60.0, 120.0, 300.0], metavar="S1,S2,...",
                        help="seconds of training at which to score (default: 60,120,300)")
    parser.add_argument("--eval-sentences", type=int, default=500,
                        help="held-out pairs decoded at each mark (default: 500)")
    parser.add_argument("--out", metavar="FILE.jsonl", help="also append the records to this file")
    parser.add_argument("--joint-vocab", action="store_true", help="as train.py's --joint-vocab (bpe)")
    for key, kind in SETTING_FLAGS.items():
        choices = ("word", "char", "bpe") if key == "tokenizer" else None
        default = {"valid_size": "min(1000, 10%%)", "lr": "the paper's"}.get(key, TRAIN_DEFAULTS.get(key))
        parser.add_argument("--" + key.replace("_", "-"), type=kind, default=None, choices=choices,
                            help=f"as train.py's (default: train.py's, {default})")
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    if args.eval_sentences < 1:
        raise SystemExit(f"error: --eval-sentences must be at least 1, got {args.eval_sentences}")
    records = side_by_side(args, argv) if args.side_by_side else time_to_accuracy(args)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as file:
            file.writelines(json.dumps(record) + "\n" for record in records)
    if args.side_by_side:
        print(markdown_rows(records), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
