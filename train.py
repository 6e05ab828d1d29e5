#!/usr/bin/env python
"""Train a Transformer translator, evaluate it, and translate with it.

    python train.py                              # the built-in toy language pair (a few minutes on 2 CPU cores)
    python train.py --task reverse               # other built-in tasks: copy, reverse
    python train.py --data pairs.tsv             # your own "source<TAB>target" file
    python train.py --resume runs/toy --steps 4000        # carry on where a run stopped
    python train.py translate --checkpoint runs/toy "the big dog sees a cat"
    python train.py evaluate --checkpoint runs/toy --beam 4
    python train.py export --checkpoint runs/toy --out model.safetensors

A run writes into its run directory (runs/<task> unless --out says otherwise), which belongs to
that run alone (a new run there needs --overwrite; one process at a time holds its lock): last.ckpt
(model, optimizer, schedule, vocabularies, settings, data position and random states, saved
atomically every --save-every steps, at the end and on Ctrl-C, SIGTERM or SIGHUP), metrics.jsonl
(one JSON record per log line), and, when matplotlib is installed, curves.png and attention.png.
A resumed run goes on in the directory of the checkpoint it resumes. Exit codes: 0 done, 2 a bad
flag or file, 3 diverged (3 steps in a row whose loss or gradient was not finite; the last good
checkpoint is kept), 128 + N stopped by signal N (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP).

The file reads top to bottom: command line, model, one training step, the training run (data,
model, optimizer, the loop, evaluation); the evaluate, translate and export commands are in
transformer/commands.py. The pieces they use (settings, corpus, batch stream, losses, scoring,
checkpoints, the metrics log) are modules of the transformer package.
"""
from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import time
from pathlib import Path

EXIT_USAGE, EXIT_DIVERGED, EXIT_INTERRUPTED = 2, 3, 130

if __name__ == "__main__":
    # One BLAS thread unless you say otherwise (OPENBLAS_NUM_THREADS=2 python train.py): this
    # model's matrices are small, so a second thread gains little on an idle machine, and BLAS
    # threads that spin-wait for a busy core made training 2-14x slower when other processes
    # shared a 2-core machine (docs/benchmarks.md). Must be set before NumPy is imported.
    for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_variable, "1")
    # Ctrl-C while NumPy and the model code load waits until they have (an interrupted NumPy import is a
    # screenful of ImportError), then ends the program in one line.
    _ctrl_c_while_importing = []
    signal.signal(signal.SIGINT, lambda *_: _ctrl_c_while_importing.append(True))

import minigrad
from transformer.batching import BatchStream, batch_tensors
from transformer.checkpoint import checkpoint_path, load_checkpoint, restore_training, save_checkpoint
from transformer.commands import (add_evaluate_flags, add_export_flags, add_translate_flags, run_evaluate,
                                  run_export, run_translate)
from transformer.corpus import Corpus, prepare_corpus
from transformer.data import DataError
from transformer.device_check import check_device
from transformer.divergence import DivergenceGuard, Diverged, check_finite, divergence_advice
from transformer.errors import UsageError
from transformer.interrupt import StopOnInterrupt
from transformer.losses import token_losses, validation_losses
from transformer.model import Transformer
from transformer.optimizer import build_optimizer, schedule_notes
from transformer.run_directory import RunDirectory, claim_run_directory
from transformer.run_log import TrainingLog, append_records
from transformer.run_pictures import draw_pictures
from transformer.run_settings import TRAIN_DEFAULTS, add_train_flags, check_steps_left, resolve_train_settings
from transformer.scoring import format_scores, print_examples, score_pairs

if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if _ctrl_c_while_importing:
        print("\ninterrupted while starting", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    minigrad.tune_cpu()  # the process settings the speed figures were measured with (README, "Speed on the CPU")


# -- command line (the training flags and their defaults: transformer/run_settings.py) -------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train.py", description="Train (default), evaluate or use a Transformer translator.",
        epilog="`python train.py` alone trains on the built-in toy task. "
               "See `python train.py train --help` for every training flag.")
    commands = parser.add_subparsers(dest="command", metavar="{train,evaluate,translate,export}")

    train = commands.add_parser("train", help="train a model (the default command)",
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                description=__doc__.split("\n\n")[0])
    add_train_flags(train)
    add_evaluate_flags(commands.add_parser("evaluate", help="score a checkpoint on held-out pairs or a file"))
    add_translate_flags(commands.add_parser("translate", help="translate sentences given as arguments or on stdin"))
    add_export_flags(commands.add_parser("export", help="write a checkpoint's model as a .safetensors file"))
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    """`train` is the default command: `train.py --steps 10` means `train.py train --steps 10`."""
    if not argv or argv[0] not in ("train", "evaluate", "translate", "export", "-h", "--help"):
        argv = ["train"] + list(argv)
    return build_parser().parse_args(argv)


# -- model -----------------------------------------------------------------------------------------

def model_config(settings: dict, corpus: Corpus) -> dict:
    layers = settings["layers"]
    return dict(src_vocab_size=len(corpus.src_vocab), tgt_vocab_size=len(corpus.tgt_vocab),
                d_model=settings["d_model"], n_heads=settings["heads"], d_ff=settings["d_ff"],
                n_encoder_layers=settings["encoder_layers"] or layers,
                n_decoder_layers=settings["decoder_layers"] or layers,
                dropout=settings["dropout"], norm_first=settings["norm_first"], max_len=settings["max_len"],
                pad_id=corpus.src_vocab.pad_id)


# -- train -----------------------------------------------------------------------------------------

def train_step(model, batch, optimizer, schedule, settings, device, guard, step) -> dict | None:
    """The update after `step` updates; None when the guard skips it (loss or gradient norm not finite)."""
    src, tgt_in, tgt_out = batch_tensors(batch, device)
    logits = model(src, tgt_in)
    loss, nll, correct = token_losses(logits, tgt_out, model.pad_id, settings["label_smoothing"])
    optimizer.zero_grad()
    loss.backward()
    grad_norm = minigrad.optim.clip_grad_norm_(model.parameters(), settings["clip"] or math.inf)  # --clip 0: norm only
    if not guard.allows_update(step, loss, grad_norm):      # one host read a step; raises Diverged
        return None
    lr = schedule.get_last_lr()[0]       # the rate this update uses
    optimizer.step()
    schedule.step()
    return {"loss": loss.detach(), "nll": nll, "correct": correct, "lr": lr, "tokens": batch.n_tokens}


def run_train(args: argparse.Namespace) -> int:
    """Claim the run directory (a resumed run: its checkpoint's, unless --out), then train in it."""
    resume = None
    if args.resume is not None:
        resume = checkpoint_path(args.resume or args.out or default_run_dir(args.task or TRAIN_DEFAULTS["task"],
                                                                            args.data))
    settings = resolve_train_settings(vars(args), None) if resume is None else None   # checked before writing
    run_dir = Path(args.out) if args.out else resume.parent if resume else default_run_dir(settings["task"],
                                                                                            settings["data"])
    with claim_run_directory(run_dir, resume, bool(args.overwrite)) as run_directory:
        saved_state = load_checkpoint(resume) if resume else None
        if saved_state:
            settings = resolve_train_settings(vars(args), saved_state["settings"])
        settings["out"] = str(run_dir)
        return train_in(run_directory, settings, saved_state)


def train_in(run_directory: RunDirectory, settings: dict, saved_state: dict | None) -> int:
    run_dir, checkpoint = run_directory.path, run_directory.checkpoint
    device = check_device(settings["device"])
    minigrad.manual_seed(settings["seed"])
    corpus = prepare_corpus(settings, saved_state["tokenizers"] if saved_state else None)
    stream = BatchStream(corpus, settings["batch_size"], settings["seed"])
    total_steps = settings["steps"] or math.ceil(settings["epochs"] * stream.batches_per_epoch())
    if settings["epochs"] is not None:
        total_steps = min(total_steps, math.ceil(settings["epochs"] * stream.batches_per_epoch()))
    config = model_config(settings, corpus) if not saved_state else saved_state["model_config"]
    model = Transformer(**config).to(device)
    optimizer, schedule = build_optimizer(model, settings, total_steps)
    step = 0
    if saved_state:
        step = restore_training(saved_state, corpus, model, optimizer, schedule, stream)
        check_steps_left(step, total_steps, stream.epochs_done, settings, saved_state["path"])
        print(f"resumed from {saved_state['path']} at step {step} (epoch {stream.epochs_done:.2f})")
    model.train()

    where = settings["data"] or f"built-in task '{settings['task']}'"
    print(f"data: {where}: {len(corpus.train_src)} training pairs, {len(corpus.valid_pairs)} held out; "
          f"vocabularies: {len(corpus.src_vocab)} source, {len(corpus.tgt_vocab)} target tokens")
    print(f"model: {model.num_parameters():,} parameters ({config['n_encoder_layers']}+{config['n_decoder_layers']} "
          f"layers, d_model {config['d_model']}, {config['n_heads']} heads, d_ff {config['d_ff']}) on {device}; "
          f"training up to {total_steps} steps or {settings['time_budget']:.0f} s; run directory {run_dir}")
    for note in schedule_notes(schedule, settings, total_steps, resumed=saved_state is not None):
        print(note)
    valid_ids = corpus.valid_ids(settings["max_len"])
    saved_step = step if run_directory.continues_its_own_run() else None
    run_directory.begin(step)

    def save():        # never a model that is not finite; a signal waits until the file is whole
        nonlocal saved_step
        check_finite(step, model=model.state_dict(), optimizer=optimizer.state_dict())
        with interrupt.deferred():
            save_checkpoint(checkpoint, model, optimizer, schedule, corpus, settings, step, stream)
        saved_step = step

    def validate():
        if corpus.valid_pairs:
            log.valid(step, validation_losses(model, valid_ids, corpus.tgt_vocab, settings["batch_size"],
                                              settings["label_smoothing"], device))

    log = TrainingLog(run_dir, total_steps, step, settings["progress"])
    guard = DivergenceGuard(report=log.note)
    stop_reason = "step limit"
    lr = schedule.get_last_lr()[0]
    with StopOnInterrupt() as interrupt:
        try:
            while True:
                if settings["epochs"] is not None and stream.epochs_done >= settings["epochs"]:
                    stop_reason = "epoch limit"
                    break
                if step >= total_steps:
                    break
                if log.elapsed() > settings["time_budget"]:
                    stop_reason = f"time budget of {settings['time_budget']:.0f} s"
                    break
                if interrupt.requested:
                    break
                result = train_step(model, stream.next(), optimizer, schedule, settings, device, guard, step)
                if result is None:     # skipped: no update, not counted
                    continue
                step += 1
                lr = result["lr"]
                log.add_step(result)
                if step % settings["log_every"] == 0:
                    log.train(step, stream.epochs_done, lr)
                if settings["save_every"] and step % settings["save_every"] == 0:
                    save()
                if settings["eval_every"] and step % settings["eval_every"] == 0:
                    validate()
            with interrupt.deferred():
                log.train(step, stream.epochs_done, lr)
                save()
        except KeyboardInterrupt:      # a second signal, mid-step: the state may be half updated
            log.close()
            print(f"\ninterrupted again at step {step}: stopped without saving "
                  f"(the last checkpoint, if any, is {checkpoint})", file=sys.stderr)
            return interrupt.exit_code
        except Diverged as error:
            log.close()
            print(f"error: {error}; {divergence_advice(checkpoint, saved_step, settings)}", file=sys.stderr)
            return EXIT_DIVERGED
        if interrupt.requested:
            log.close()
            print(f"interrupted at step {step} ({interrupt.signal_name}): checkpoint saved to {checkpoint}\n"
                  f"resume with: python train.py --resume {run_dir}", file=sys.stderr)
            return interrupt.exit_code
    log.close()
    train_seconds = log.elapsed()
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
    draw_pictures(run_dir, model, corpus, device, settings["attention_sentence"])
    return 0


def default_run_dir(task: str | None, data: str | None) -> Path:
    return Path("runs") / (Path(data).stem if data else task)


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        command = {"evaluate": run_evaluate, "translate": run_translate, "export": run_export}.get(args.command,
                                                                                                  run_train)
        return command(args)
    except (UsageError, DataError, minigrad.CheckpointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
