"""The sentence pairs of a run, as a Corpus: held-out pairs, vocabularies and training id lists.

A run's settings name its data (a built-in task or a file) and how it is cut up; from them,
prepare_corpus gives the same Corpus every time, which is what lets a resumed run, or `evaluate`
on a checkpoint, find the very same held-out pairs without storing them.
"""
from __future__ import annotations

from dataclasses import dataclass

from .data import Vocab, load_tsv, split_pairs, tokenize
from .errors import UsageError
from .toy_tasks import make_task

DEFAULT_VALID_SIZE = 1000      # built-in tasks; a data file holds out min(1000, 10%)


@dataclass
class Corpus:
    train_pairs: list
    valid_pairs: list
    src_vocab: Vocab
    tgt_vocab: Vocab
    train_src: list          # id lists, no <bos>/<eos>
    train_tgt: list
    tokenizer: str

    def valid_ids(self, max_len: int) -> tuple[list, list]:
        """(source, target) id lists of the held-out pairs, cut to fit a model of `max_len` tokens."""
        sources = encode_sources([s for s, _ in self.valid_pairs], self.src_vocab, self.tokenizer, max_len)
        targets = [self.tgt_vocab.encode(tokenize(t, self.tokenizer)[:max_len - 2]) for _, t in self.valid_pairs]
        return sources, targets


def encode_sources(sentences, src_vocab: Vocab, kind: str, max_len: int) -> list:
    """Source id lists a model of `max_len` tokens accepts: cut to fit, and never empty."""
    return [src_vocab.encode(tokenize(s, kind)[:max_len - 2]) or [src_vocab.unk_id] for s in sentences]


def read_pairs_file(path: str, skip_bad_lines: bool) -> list:
    """The pairs of a `source<TAB>target` file, saying how many bad lines were skipped."""
    pairs, n_skipped = load_tsv(path, skip_bad_lines=skip_bad_lines, skip_hint="--skip-bad-lines would skip it")
    if n_skipped:
        print(f"skipped {n_skipped} bad line{'s' * (n_skipped != 1)} in {path}")
    return pairs


def read_pairs(settings: dict) -> tuple[list, list]:
    """(train, valid) sentence pairs from a built-in task or a file, the same every time for the same settings."""
    if settings["data"] is None:
        valid_size = DEFAULT_VALID_SIZE if settings["valid_size"] is None else settings["valid_size"]
        try:
            return make_task(settings["task"], settings["train_size"], valid_size, seed=settings["seed"])
        except ValueError as error:
            raise UsageError(f"--task {settings['task']} with --train-size {settings['train_size']} and "
                             f"--valid-size {valid_size}: {error}") from None
    pairs = read_pairs_file(settings["data"], settings["skip_bad_lines"])
    valid_size = settings["valid_size"]
    if valid_size is None:
        valid_size = min(DEFAULT_VALID_SIZE, len(pairs) // 10)
    if not 0 <= valid_size < len(pairs):
        raise UsageError(f"--valid-size must be between 0 and {len(pairs) - 1} for the {len(pairs)} pairs of "
                         f"{settings['data']}, got {valid_size}")
    try:
        return split_pairs(pairs, valid_size, seed=settings["seed"])
    except ValueError:
        sources = len({source for source, _ in pairs})
        raise UsageError(f"--valid-size {valid_size} leaves no training pairs: {settings['data']} has only "
                         f"{sources} distinct source sentences") from None


def prepare_corpus(settings: dict) -> Corpus:
    """Read the pairs, drop training pairs longer than --max-len, and build the vocabularies on the rest."""
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
