"""train.py's commands besides training: evaluate, translate and export, with their flags.

    python train.py evaluate  --checkpoint runs/toy --beam 4
    python train.py translate --checkpoint runs/toy --beam 5 --n-best 3 < input.txt
    python train.py export    --checkpoint runs/toy --out model.safetensors
    python train.py translate --checkpoint model.safetensors "the big dog sees a cat"

A checkpoint here is a run directory, a checkpoint file, or a .safetensors file written by
`export` (it holds the weights, the vocabularies and the tokenizers: all that translating needs,
but not the run's data, so `evaluate` on it needs --data).

The n-best format (translate --n-best N) is Moses's: one line per hypothesis, best first,

    INDEX ||| HYPOTHESIS ||| LOG_PROB ||| SCORE

INDEX counts the input lines from 0 (a blank line has no hypotheses), LOG_PROB is the sum of the
tokens' log-probabilities (the end of sentence included) and SCORE is LOG_PROB / lp(L), GNMT's
length penalty with --length-penalty as alpha (decoding.py): what beam search ranks by.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path
from typing import NamedTuple

import minigrad

from . import safetensors_io
from .checkpoint import load_checkpoint, restore_model
from .corpus import SourceTooLong, encode_sources, read_pairs, read_pairs_file
from .data import Vocab, detokenize, tokenize
from .device_check import check_device
from .errors import UsageError
from .flag_checks import check_flags
from .scoring import format_scores, print_examples, score_pairs, translate_ids
from .tokenizers import Tokenizers, tokenizers_from_dict, tokenizers_to_dict

DEFAULT_LENGTH_PENALTY = 0.6        # decoding.beam_search's alpha
DEFAULT_DECODE_BATCH_SIZE = 250


# -- flags -----------------------------------------------------------------------------------------

def _checkpoint_flag(parser, what="checkpoint file, run directory or exported .safetensors file"):
    parser.add_argument("--checkpoint", required=True, metavar="PATH", help=what)


def _decoding_flags(parser):
    parser.add_argument("--beam", type=int, help="beam width (default: greedy decoding)")
    parser.add_argument("--length-penalty", type=float, default=DEFAULT_LENGTH_PENALTY, metavar="ALPHA",
                        help=f"GNMT length penalty alpha of beam search's ranking and of the n-best scores "
                             f"(0: plain log-probability; default: {DEFAULT_LENGTH_PENALTY})")
    parser.add_argument("--decode-batch-size", type=int, default=DEFAULT_DECODE_BATCH_SIZE,
                        help=f"sentences decoded at once (default: {DEFAULT_DECODE_BATCH_SIZE})")
    parser.add_argument("--device", help="cpu or cuda (default: $MINIGRAD_DEVICE, else cpu)")


def add_evaluate_flags(parser: argparse.ArgumentParser):
    _checkpoint_flag(parser)
    parser.add_argument("--data", metavar="FILE.tsv",
                        help="pairs to score (default: the run's held-out pairs; needed for a .safetensors file)")
    parser.add_argument("--skip-bad-lines", action="store_true", help="skip malformed lines of --data")
    parser.add_argument("--limit", type=int, help="score only the first N pairs (default: all)")
    parser.add_argument("--examples", type=int, default=5, help="example translations printed (default: 5)")
    _decoding_flags(parser)


def add_translate_flags(parser: argparse.ArgumentParser):
    _checkpoint_flag(parser)
    parser.add_argument("sentences", nargs="*", help="sentences (default: one per line from stdin)")
    parser.add_argument("--n-best", type=int, metavar="N",
                        help="print the N best hypotheses of each sentence with their scores, as "
                             "'INDEX ||| HYPOTHESIS ||| LOG_PROB ||| SCORE' (needs --beam K >= N when N > 1; "
                             "default: the best translation alone)")
    parser.add_argument("--output", metavar="FILE", help="write the translations to FILE (default: stdout)")
    _decoding_flags(parser)


def add_export_flags(parser: argparse.ArgumentParser):
    _checkpoint_flag(parser, "checkpoint file or run directory")
    parser.add_argument("--out", required=True, metavar="FILE.safetensors",
                        help="the file to write: weights by state_dict name; model config, vocabularies and "
                             "tokenizers (BPE merges) in its metadata")


# -- a translator from any of the files --------------------------------------------------------

class Translator(NamedTuple):
    model: object
    src_vocab: Vocab
    tgt_vocab: Vocab
    tokenizers: Tokenizers
    description: str           # where it came from, for the output
    state: dict | None         # the checkpoint's state (None for a .safetensors file)


def is_safetensors(path: str | Path) -> bool:
    """A .safetensors file, by its name or by its first bytes (an 8-byte header length, then '{')."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return True
    if not path.is_file():
        return False
    with open(path, "rb") as handle:
        head = handle.read(9)
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < path.stat().st_size


def load_translator(path: str, device) -> Translator:
    """The model, vocabularies and tokenizers of a checkpoint or of an exported .safetensors file."""
    if not is_safetensors(path):
        state = load_checkpoint(path)
        model, src_vocab, tgt_vocab = restore_model(state, device)
        return Translator(model, src_vocab, tgt_vocab, state["tokenizers"],
                          f"checkpoint {state['path']} (step {state['step']})", state)
    exported = safetensors_io.load_safetensors(path, device)
    if exported.tokenizer is None:
        raise UsageError(f"{path}: no 'tokenizer' in its metadata, so its sentences cannot be cut into tokens "
                         "(files written by `train.py export` have one)")
    try:
        tokenizers = tokenizers_from_dict(json.loads(exported.tokenizer))
    except (ValueError, RecursionError) as error:
        raise UsageError(f"{path}: its 'tokenizer' metadata is malformed: {error}") from None
    return Translator(exported.model, exported.src_vocab, exported.tgt_vocab, tokenizers, f"{path} (exported)",
                      None)


# -- evaluate --------------------------------------------------------------------------------------

def run_evaluate(args: argparse.Namespace) -> int:
    """Score a checkpoint on the run's held-out pairs or on --data; pairs too long for the model are
    skipped and counted."""
    check_flags(vars(args))
    device = check_device(args.device or minigrad.get_default_device())
    if is_safetensors(args.checkpoint) and not args.data:
        raise UsageError(f"{args.checkpoint} holds no data of its run: pass --data FILE.tsv to score it on")
    translator = load_translator(args.checkpoint, device)
    if args.data:
        pairs = read_pairs_file(args.data, args.skip_bad_lines)
        where = args.data
    else:
        pairs = read_pairs(translator.state["settings"])[1]
        where = "the run's held-out pairs"
        if not pairs:
            raise UsageError("the run held out no pairs; pass --data FILE to score")
    if args.limit:
        pairs = pairs[:args.limit]
    decoding = f"beam {args.beam}" if args.beam and args.beam > 1 else "greedy"
    scores, hypotheses = score_pairs(translator.model, pairs, translator.src_vocab, translator.tgt_vocab,
                                     translator.tokenizers, device, beam=args.beam,
                                     batch_size=args.decode_batch_size, length_penalty=args.length_penalty)
    print(f"{translator.description}, {where}, {decoding} decoding")
    print_examples(pairs, hypotheses, args.examples, translator.tokenizers)
    if scores.get("skipped_too_long"):
        print(f"note: {scores['skipped_too_long']} of the {len(pairs)} pairs were not scored: their source has more "
              f"tokens than the model's max_len {translator.model.max_len} allows", file=sys.stderr)
    print(format_scores(scores))
    return 0


# -- translate -------------------------------------------------------------------------------------

def check_nbest_flags(n_best: int | None, beam: int | None):
    """--n-best N > 1 needs a beam search that keeps at least N hypotheses."""
    if n_best is None or n_best == 1:
        return
    if not beam or beam == 1:
        raise UsageError(f"--n-best {n_best} needs --beam K with K >= {n_best}: greedy decoding gives one hypothesis")
    if n_best > beam:
        raise UsageError(f"--n-best {n_best} is more than --beam {beam}: a beam search keeps at most {beam} "
                         f"hypotheses (give --beam {n_best} or more)")


def run_translate(args: argparse.Namespace) -> int:
    """Translate the sentences given, or stdin's lines a batch at a time, writing them in input order."""
    check_flags(vars(args))
    check_nbest_flags(args.n_best, args.beam)
    device = check_device(args.device or minigrad.get_default_device())
    translator = load_translator(args.checkpoint, device)
    where = "the arguments" if args.sentences else "stdin"
    lines = iter(args.sentences) if args.sentences else (line.rstrip("\r\n") for line in sys.stdin)
    try:
        out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    except OSError as error:
        raise UsageError(f"--output {args.output}: cannot write there ({error.strerror or error})") from None
    reported, first_line = set(), 0
    try:
        while True:
            batch = list(itertools.islice(lines, args.decode_batch_size))
            if not batch:
                break
            for line in _translate_batch(translator, batch, first_line, where, reported, args, device):
                out.write(line + "\n")
            out.flush()
            first_line += len(batch)
    finally:
        if args.output:
            out.close()
    if args.output:
        print(f"wrote the translations of {first_line} lines to {args.output}", file=sys.stderr)
    return 0


def _translate_batch(translator: Translator, batch: list, first_line: int, where: str, reported: set, args,
                     device) -> list:
    """The output lines of one batch of input lines (numbered from `first_line`)."""
    source_kind, target_kind = translator.tokenizers
    numbered = [(first_line + i, text) for i, text in enumerate(batch) if text.strip()]
    unknown = sorted({token for _, text in numbered for token in tokenize(text, source_kind)
                      if token not in translator.src_vocab} - reported)
    if unknown:
        reported.update(unknown)
        print(f"note: not in the training vocabulary, read as <unk>: {' '.join(unknown)}", file=sys.stderr)
    try:
        sources = encode_sources([text for _, text in numbered], translator.src_vocab, source_kind,
                                 translator.model.max_len)
    except SourceTooLong as error:
        number = numbered[error.index][0] + 1
        raise SourceTooLong(error.index, error.length, error.max_len,
                            name=f"line {number} of {where}" if where == "stdin" else f"sentence {number}") from None
    outputs = translate_ids(translator.model, sources, translator.tgt_vocab, device, beam=args.beam,
                            batch_size=args.decode_batch_size, n_best=args.n_best,
                            length_penalty=args.length_penalty) if sources else []

    def text(ids):
        return detokenize(translator.tgt_vocab.decode(ids), target_kind)

    if args.n_best is None:
        translated = dict(zip((index for index, _ in numbered), map(text, outputs)))
        return [translated.get(first_line + i, "") for i in range(len(batch))]
    return [f"{index} ||| {text(h.tokens)} ||| {h.log_prob:.4f} ||| {h.score:.4f}"
            for (index, _), hypotheses in zip(numbered, outputs) for h in hypotheses]


# -- export ----------------------------------------------------------------------------------------

def run_export(args: argparse.Namespace) -> int:
    """Write a checkpoint's model as a .safetensors file that translates on its own."""
    safetensors_io.check_available()
    state = load_checkpoint(args.checkpoint)
    model, src_vocab, tgt_vocab = restore_model(state, "cpu")
    out = Path(args.out)
    if not out.parent.is_dir():
        raise UsageError(f"--out {out}: no directory {out.parent} to write it in")
    try:
        safetensors_io.save_safetensors(out, model, src_vocab, tgt_vocab,
                                        tokenizer=json.dumps(tokenizers_to_dict(state["tokenizers"])))
    except OSError as error:
        raise UsageError(f"--out {out}: cannot write there ({error.strerror or error})") from None
    print(f"wrote {out}: {len(model.state_dict())} tensors ({model.num_parameters():,} parameters) of "
          f"{state['path']} (step {state['step']}), with its config, vocabularies and "
          f"{state['settings']['tokenizer']} tokenizer in the metadata")
    return 0
