"""The sentence pairs of a run, as a Corpus: held-out pairs, vocabularies and training id lists.

A run's settings name its data (a built-in task or a file) and how it is cut up; from them,
prepare_corpus gives the same Corpus every time, which is what lets a resumed run, or `evaluate`
on a checkpoint, find the very same held-out pairs without storing them.
"""
from __future__ import annotations

from dataclasses import dataclass

from .data import Vocab, load_tsv, split_pairs, tokenize
from .errors import UsageError
from .tokenizers import Tokenizers, learn_tokenizers, sides
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
    tokenizer: Tokenizers    # each side's kind: "word", "char" or its BPE (tokenizers.py)

    def valid_ids(self, max_len: int) -> tuple[list, list]:
        """(source, target) id lists of the held-out pairs, cut to fit a model of `max_len` tokens
        (for the teacher-forced validation loss, where a cut pair still tells how well the model fits)."""
        source, target = self.tokenizer
        sources = encode_sources([s for s, _ in self.valid_pairs], self.src_vocab, source, max_len, too_long="cut")
        targets = [self.tgt_vocab.encode(tokenize(t, target)[:max_len - 2]) for _, t in self.valid_pairs]
        return sources, targets


class SourceTooLong(UsageError):
    """A source sentence with more tokens than the model has positions for; never cut silently."""

    def __init__(self, index: int, length: int, max_len: int, name: str | None = None):
        """`index` counts from 0 in the list given; `name` says which sentence for the user (default:
        "sentence INDEX+1")."""
        self.index, self.length, self.max_len = index, length, max_len
        name = name or f"sentence {index + 1}"
        super().__init__(f"{name} has {length} tokens, more than the {max_len - 2} that the model takes (its max_len "
                         f"{max_len}, less <bos> and <eos>): split it into shorter sentences, or use a model trained "
                         f"with a larger --max-len")


def encode_sources(sentences, src_vocab: Vocab, kind, max_len: int, too_long: str = "error") -> list:
    """Source id lists for a model of `max_len` tokens, never empty (an empty sentence is one <unk>).

    A sentence longer than max_len - 2 tokens (the room training left for <bos>/<eos>) raises
    SourceTooLong naming it with too_long="error"; is None in the result with "skip"; is cut to fit
    with "cut". `kind` is the source side's: "word", "char", a BPE, or a Tokenizers pair.
    """
    if too_long not in ("error", "skip", "cut"):
        raise ValueError(f"too_long must be 'error', 'skip' or 'cut', got {too_long!r}")
    kind, longest = sides(kind).source, max_len - 2
    encoded = []
    for index, sentence in enumerate(sentences):
        tokens = tokenize(sentence, kind)
        if len(tokens) > longest:
            if too_long == "error":
                raise SourceTooLong(index, len(tokens), max_len)
            if too_long == "skip":
                encoded.append(None)
                continue
            tokens = tokens[:longest]
        encoded.append(src_vocab.encode(tokens) or [src_vocab.unk_id])
    return encoded


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


def prepare_corpus(settings: dict, tokenizers: Tokenizers | None = None) -> Corpus:
    """Read the pairs, drop training pairs longer than --max-len, and build the vocabularies on the rest.

    `tokenizers`: a resumed run's, from its checkpoint; otherwise they are learned here, from the
    training pairs only (BPE), so that the held-out pairs stay unseen. The vocabulary of a BPE side
    is every piece its BPE can make: no character seen in training becomes <unk>.
    """
    train_pairs, valid_pairs = read_pairs(settings)
    tokenizers = tokenizers or learn_tokenizers(settings, train_pairs)
    source, target = tokenizers
    longest = settings["max_len"] - 2            # room for <bos>/<eos>
    tokenized = [(tokenize(s, source), tokenize(t, target)) for s, t in train_pairs]
    kept = [(s, t) for s, t in tokenized if len(s) <= longest and len(t) <= longest]
    if len(kept) < len(tokenized):
        print(f"skipped {len(tokenized) - len(kept)} training pairs longer than --max-len {settings['max_len']}")
    if not kept:
        raise UsageError("no training pairs left")
    if isinstance(source, str):
        src_vocab = Vocab.build((s for s, _ in kept), min_freq=settings["min_freq"])
        tgt_vocab = Vocab.build((t for _, t in kept), min_freq=settings["min_freq"])
    else:
        src_vocab = Vocab(source.symbols())
        tgt_vocab = src_vocab if tokenizers.joint else Vocab(target.symbols())
    return Corpus(train_pairs, valid_pairs, src_vocab, tgt_vocab,
                  [src_vocab.encode(s) for s, _ in kept], [tgt_vocab.encode(t) for _, t in kept], tokenizers)
