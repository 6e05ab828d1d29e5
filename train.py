#!/usr/bin/env python
"""Train a Transformer translator, evaluate it, and translate with it.

    python train.py                              # the built-in toy language pair (a few minutes on 2 CPU cores)
    python train.py --task reverse               # other built-in tasks: copy, reverse
    python train.py --data pairs.tsv             # your own "source<TAB>target" file
    python train.py --resume runs/toy --steps 4000        # carry on where a run stopped
    python train.py translate --checkpoint runs/toy "the big dog sees a cat"
    python train.py evaluate --checkpoint runs/toy --beam 4

A run writes into its run directory (runs/<task> unless --out says otherwise), which belongs to
that run alone (a new run there needs --overwrite; one process at a time holds its lock): last.ckpt
(model, optimizer, schedule, vocabularies, settings, data position and random states, saved
atomically every --save-every steps, at the end and on Ctrl-C, SIGTERM or SIGHUP), metrics.jsonl
(one JSON record per log line), and, when matplotlib is installed, curves.png and attention.png.
A resumed run goes on in the directory of the checkpoint it resumes. Exit codes: 0 done, 2 a bad
flag or file, 3 diverged (3 steps in a row whose loss or gradient was not finite; the last good
checkpoint is kept), 128 + N stopped by signal N (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP).

The file reads top to bottom: command line, model, one training step, the training run (data,
model, optimizer, the loop, evaluation), then the evaluate and translate commands. The pieces
they use (settings, corpus, batch stream, losses, scoring, checkpoints, the metrics log) are
modules of the transformer package.
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
from transformer.checkpoint import checkpoint_path, load_checkpoint, restore_model, restore_training, save_checkpoint
from transformer.corpus import Corpus, encode_sources, prepare_corpus, read_pairs, read_pairs_file
from transformer.data import DataError, detokenize, tokenize
from transformer.device_check import check_device
from transformer.distributed_training import Ranks, exit_code
from transformer.divergence import DivergenceGuard, Diverged, check_finite, divergence_advice
from transformer.errors import UsageError
from transformer.flag_checks import check_flags
from transformer.interrupt import StopOnInterrupt
from transformer.losses import token_losses, validation_losses
from transformer.model import Transformer
from transformer.optimizer import build_optimizer, schedule_notes
from transformer.run_directory import RunDirectory, claim_run_directory
from transformer.run_log import append_records
from transformer.run_pictures import draw_pictures
from transformer.run_settings import TRAIN_DEFAULTS, add_train_flags, check_steps_left, resolve_train_settings
from transformer.scoring import format_scores, print_examples, score_pairs, translate_ids

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
    commands = parser.add_subparsers(dest="command", metavar="{train,evaluate,translate}")

    train = commands.add_parser("train", help="train a model (the default command)",
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                description=__doc__.split("\n\n")[0])
    add_train_flags(train)

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

def train_step(model, batch, optimizer, schedule, settings, device, guard, step, ranks=Ranks()) -> dict | None:
    """The update after `step` updates; None when the guard skips it (loss or gradient norm not finite)."""
    src, tgt_in, tgt_out = batch_tensors(batch, device)
    logits = ranks.forward(model, src, tgt_in)
    loss, nll, correct = token_losses(logits, tgt_out, model.pad_id, settings["label_smoothing"])
    optimizer.zero_grad()
    loss, nll, correct, tokens = ranks.backward(loss, nll, correct, batch.n_tokens)  # all ranks': 1 process's update
    grad_norm = minigrad.optim.clip_grad_norm_(model.parameters(), settings["clip"] or math.inf)  # --clip 0: norm only
    if not guard.allows_update(step, loss, grad_norm):      # one host read a step; raises Diverged
        return None
    lr = schedule.get_last_lr()[0]       # the rate this update uses
    optimizer.step()
    schedule.step()
    return {"loss": loss.detach(), "nll": nll, "correct": correct, "lr": lr, "tokens": tokens}


def run_train(args: argparse.Namespace) -> int:
    """Claim the run directory (a resumed run: its checkpoint's, unless --out), then train in it."""
    ranks = Ranks.join(args)             # under mpirun -n N: one of N processes; rank 0 alone writes
    resume = None
    if args.resume is not None:
        resume = checkpoint_path(args.resume or args.out or default_run_dir(args.task or TRAIN_DEFAULTS["task"],
                                                                            args.data))
    settings = resolve_train_settings(vars(args), None) if resume is None else None   # checked before writing
    run_dir = Path(args.out) if args.out else resume.parent if resume else default_run_dir(settings["task"],
                                                                                            settings["data"])
    with ranks.claim(claim_run_directory, run_dir, resume, bool(args.overwrite)) as run_directory:
        saved_state = load_checkpoint(resume) if resume else None
        if saved_state:
            settings = resolve_train_settings(vars(args), saved_state["settings"])
        settings["out"] = str(run_dir)
        return train_in(run_directory, settings, saved_state, ranks)


def train_in(run_directory: RunDirectory, settings: dict, saved_state: dict | None, ranks=Ranks()) -> int:
    run_dir, checkpoint = run_directory.path, run_directory.checkpoint
    device = check_device(settings["device"])
    minigrad.manual_seed(settings["seed"])
    corpus = prepare_corpus(settings)
    stream = ranks.sharded(BatchStream(corpus, ranks.global_batch_size(settings, saved_state), settings["seed"]))
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
            if ranks.main:
                save_checkpoint(checkpoint, model, optimizer, schedule, corpus, settings, step, stream)
        saved_step = step

    def validate():
        if corpus.valid_pairs and ranks.main:
            log.valid(step, validation_losses(model, valid_ids, corpus.tgt_vocab, settings["batch_size"],
                                              settings["label_smoothing"], device))

    log = ranks.training_log(run_dir, total_steps, step, settings["progress"])
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
                if ranks.any(log.elapsed() > settings["time_budget"]):
                    stop_reason = f"time budget of {settings['time_budget']:.0f} s"
                    break
                if ranks.stop_requested(interrupt):
                    break
                result = train_step(model, stream.next(), optimizer, schedule, settings, device, guard, step, ranks)
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
    if not ranks.main:
        return 0
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


# -- evaluate, translate ---------------------------------------------------------------------------

def run_evaluate(args: argparse.Namespace) -> int:
    check_flags(vars(args))
    device = check_device(args.device or minigrad.get_default_device())
    state = load_checkpoint(args.checkpoint)
    model, src_vocab, tgt_vocab = restore_model(state, device)
    settings = state["settings"]
    if args.data:
        pairs = read_pairs_file(args.data, args.skip_bad_lines)
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
    check_flags(vars(args))
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
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        command = {"evaluate": run_evaluate, "translate": run_translate}.get(args.command, run_train)
        return command(args)
    except (UsageError, DataError, minigrad.CheckpointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(exit_code(main()))
