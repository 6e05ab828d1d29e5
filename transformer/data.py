"""From a file of sentence pairs to padded integer batches, all on the host with NumPy.

    pairs, n_skipped = load_tsv("spa.txt")                 # "source<TAB>target" lines
    train, valid = split_pairs(pairs, n_valid=1000, seed=0)
    src_vocab = Vocab.build(tokenize(s) for s, _ in train)
    src_ids = [src_vocab.encode(tokenize(s)) for s, _ in train]
    batches = make_batches(src_ids, tgt_ids, 64, src_vocab.pad_id, tgt_vocab.bos_id,
                           tgt_vocab.eos_id, shuffle=True, rng=np.random.default_rng(0))

The model never sees strings: only the int64 arrays of a `Batch`.
"""
from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIALS = (PAD, UNK, BOS, EOS)     # always ids 0, 1, 2, 3
SPACE = "\u2581"                    # "▁": a visible stand-in for " " in character tokens


class DataError(ValueError):
    """A problem with an input file; the message names the file and, where it helps, the line."""


# -- reading a pairs file ------------------------------------------------------------------------

def load_tsv(path: str | Path, skip_bad_lines: bool = False,
             skip_hint: str = "skip_bad_lines=True would skip it") -> tuple[list[tuple[str, str]], int]:
    """Read `source<TAB>target` lines (UTF-8, Tatoeba/Anki style) into (pairs, n_skipped).

    Columns after the second (Anki exports add an attribution) are ignored; blank lines are
    skipped silently. A line without a tab, with an empty side or not valid UTF-8 raises
    DataError("FILE:LINE: why (SKIP_HINT)") unless skip_bad_lines, in which case it is skipped and
    counted. Errors name the file and line so a user can open the file and fix it instead of
    guessing; `skip_hint` says how to skip such lines in the caller's words (a command line
    says "--skip-bad-lines would skip it").
    """
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read file ({error.strerror or error})") from None

    pairs: list[tuple[str, str]] = []
    n_skipped = 0
    for line_number, raw_line in enumerate(raw.split(b"\n"), start=1):
        try:
            line = raw_line.decode("utf-8")
            problem = None
        except UnicodeDecodeError as error:
            line = "?"
            problem = f"not valid UTF-8 (byte {error.start + 1} of the line; re-save the file as UTF-8)"
        if line_number == 1:
            line = line.lstrip("\ufeff")          # byte-order mark written by some editors
        if not line.strip():
            continue
        problem = problem or _pair_problem(line)
        if problem:
            if skip_bad_lines:
                n_skipped += 1
                continue
            raise DataError(f"{path}:{line_number}: {problem}; {skip_hint}")
        source, target = line.split("\t")[:2]
        pairs.append((source.strip(), target.strip()))

    if not pairs:
        skipped = f" ({n_skipped} bad lines skipped)" if n_skipped else ""
        raise DataError(f"{path}: no sentence pairs found{skipped}; expected lines of source<TAB>target")
    return pairs, n_skipped


def _pair_problem(line: str) -> str | None:
    """Why a non-blank line is not a usable pair, or None when it is fine."""
    if "\t" not in line:
        return "no tab between source and target"
    source, target = line.split("\t")[:2]
    if not source.strip():
        return "empty source (left of the first tab)"
    if not target.strip():
        return "empty target (right of the first tab)"
    return None


# -- tokens --------------------------------------------------------------------------------------

# A word (letters/digits, keeping inner apostrophes as in "don't"), or any single other symbol.
_WORD_OR_SYMBOL = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]")
_NO_SPACE_BEFORE = set(".,!?;:%)]}…")
_NO_SPACE_AFTER = set("¿¡([{")


def tokenize(text: str, kind="word") -> list[str]:
    """Split a sentence into tokens; case is kept (it carries meaning in names and German nouns).

    "word": words, with punctuation split off as tokens of its own ("Hola, Ana!" ->
    ["Hola", ",", "Ana", "!"]), so "Ana" and "Ana!" share one vocabulary entry.
    "char": characters, with each run of whitespace shown as one "▁" token.
    A learned tokenizer (a bpe.BPE, or anything with tokenize/detokenize) is its own kind:
    kind.tokenize(text), so that code written for words and characters takes subwords too.
    """
    if not isinstance(kind, str):
        return kind.tokenize(text)
    if kind == "word":
        return _WORD_OR_SYMBOL.findall(text)
    if kind == "char":
        return list(" ".join(text.split()).replace(" ", SPACE))
    raise ValueError(f"unknown token kind {kind!r}; use 'word' or 'char'")


def detokenize(tokens: Sequence[str], kind="word") -> str:
    """Turn tokens back into readable text: the inverse of tokenize, up to spacing details
    (exactly, for a learned tokenizer: kind.detokenize(tokens))."""
    if not isinstance(kind, str):
        return kind.detokenize(tokens)
    if kind == "char":
        return "".join(tokens).replace(SPACE, " ")
    if kind != "word":
        raise ValueError(f"unknown token kind {kind!r}; use 'word' or 'char'")
    text = ""
    for token in tokens:
        attach = not text or token in _NO_SPACE_BEFORE or text[-1] in _NO_SPACE_AFTER
        text += token if attach else " " + token
    return text


class Vocab:
    """Token <-> id table. The specials always come first (<pad>=0, <unk>=1, <bos>=2, <eos>=3),
    so every vocabulary, and every checkpoint, agrees on them."""

    def __init__(self, tokens: Iterable[str]):
        ordinary = [token for token in tokens if token not in SPECIALS]
        self._tokens = list(SPECIALS) + ordinary
        self._ids = {token: i for i, token in enumerate(self._tokens)}
        if len(self._ids) != len(self._tokens):
            duplicates = sorted(t for t, n in Counter(self._tokens).items() if n > 1)
            raise ValueError(f"duplicate tokens in vocabulary: {duplicates[:10]}")

    @classmethod
    def build(cls, token_lists: Iterable[Sequence[str]], min_freq: int = 1,
              max_size: int | None = None) -> "Vocab":
        """Most frequent tokens first, ties broken alphabetically so the ids never depend on input order.

        min_freq drops rare tokens (they become <unk>); max_size caps the size *including* the
        four specials, i.e. it is the size of the embedding table.
        """
        if max_size is not None and max_size < len(SPECIALS):
            raise ValueError(f"max_size must be at least {len(SPECIALS)} (the special tokens)")
        counts = Counter(token for tokens in token_lists for token in tokens if token not in SPECIALS)
        ranked = sorted((token for token, n in counts.items() if n >= min_freq),
                        key=lambda token: (-counts[token], token))
        if max_size is not None:
            ranked = ranked[:max_size - len(SPECIALS)]
        return cls(ranked)

    def __len__(self) -> int:
        return len(self._tokens)

    def __contains__(self, token: str) -> bool:
        return token in self._ids

    def encode(self, tokens: Sequence[str], add_bos: bool = False, add_eos: bool = False) -> list[int]:
        ids = [self._ids.get(token, self.unk_id) for token in tokens]
        return ([self.bos_id] if add_bos else []) + ids + ([self.eos_id] if add_eos else [])

    def decode(self, ids: Iterable[int], strip_specials: bool = True) -> list[str]:
        """Ids to tokens. With strip_specials, stop at the first <eos> (a decoder's output may go on
        after it) and drop <pad>/<bos>; <unk> stays visible so missing words are noticed."""
        tokens = []
        for i in ids:
            token = self._tokens[int(i)]
            if strip_specials:
                if token == EOS:
                    break
                if token in (PAD, BOS):
                    continue
            tokens.append(token)
        return tokens

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def unk_id(self) -> int:
        return 1

    @property
    def bos_id(self) -> int:
        return 2

    @property
    def eos_id(self) -> int:
        return 3

    def to_list(self) -> list[str]:
        """All tokens in id order, specials included: JSON-friendly, for checkpoints."""
        return list(self._tokens)

    @classmethod
    def from_list(cls, tokens: Sequence[str]) -> "Vocab":
        """Inverse of to_list. Strict, because a checkpoint's ids must map to the same tokens."""
        if tuple(tokens[:len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"a saved vocabulary must start with {list(SPECIALS)}, got {list(tokens[:4])}")
        return cls(tokens)

    def __repr__(self) -> str:
        return f"Vocab({len(self)} tokens)"


# -- held-out split ------------------------------------------------------------------------------

def split_pairs(pairs: Sequence[tuple[str, str]], n_valid: int,
                seed: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(train, valid): n_valid held-out pairs whose source sentence never appears in train.

    Tatoeba-style files list one sentence with several translations; splitting pairs at random
    would put the same source on both sides and reward memorising. So whole sources are held out:
    every pair of a held-out source goes to valid, or is dropped once valid is full.
    Train keeps the file order; valid is in random (seeded) order.
    """
    if not 0 <= n_valid < len(pairs):
        raise ValueError(f"n_valid must be between 0 and {len(pairs) - 1} for {len(pairs)} pairs, got {n_valid}")
    sources = list(dict.fromkeys(source for source, _ in pairs))     # distinct, in file order
    random.Random(seed).shuffle(sources)
    pairs_of = {}
    for pair in pairs:
        pairs_of.setdefault(pair[0], []).append(pair)

    valid: list[tuple[str, str]] = []
    held_out = set()
    for source in sources:
        if len(valid) == n_valid:
            break
        held_out.add(source)
        valid.extend(pairs_of[source][:n_valid - len(valid)])
    train = [pair for pair in pairs if pair[0] not in held_out]
    if not train:
        raise ValueError(f"n_valid={n_valid} leaves no training pairs: there are only {len(sources)} distinct sources")
    return train, valid


# -- batches -------------------------------------------------------------------------------------

@dataclass
class Batch:
    """One step's worth of examples as padded int64 arrays.

    The decoder reads tgt_in = <bos> y1 .. yn and is scored on tgt_out = y1 .. yn <eos>:
    the same sentence shifted by one, so position t predicts the token after the ones it has seen.
    """
    src: np.ndarray      # (B, S) source ids, padded with pad_id
    tgt_in: np.ndarray   # (B, T) <bos> + target, padded
    tgt_out: np.ndarray  # (B, T) target + <eos>, padded
    n_tokens: int        # non-pad tokens in tgt_out: what a per-token loss is averaged over


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int) -> np.ndarray:
    """(B, max_len) int64 array, each row a sequence followed by pad_id."""
    max_len = max((len(seq) for seq in seqs), default=0)
    batch = np.full((len(seqs), max_len), pad_id, dtype=np.int64)
    for row, seq in enumerate(seqs):
        batch[row, :len(seq)] = seq
    return batch


def batch_order_generator(seed: int) -> np.random.Generator:
    """The seeded generator that shuffles and buckets batches (its state goes into checkpoints)."""
    return np.random.default_rng(seed)


def make_batches(src_ids: Sequence[Sequence[int]], tgt_ids: Sequence[Sequence[int]], batch_size: int,
                 pad_id: int, bos_id: int, eos_id: int, shuffle: bool,
                 rng: np.random.Generator | None = None, bucket: bool = True,
                 bucket_batches: int = 50) -> list[Batch]:
    """Cut examples into padded batches; every example lands in exactly one batch.

    Padding is per batch, so short batches stay short. With bucket=True, examples are sorted by
    length within chunks of `bucket_batches` batches (after shuffling when shuffle=True), so each
    batch holds sentences of similar length and little compute is spent on padding; the batch
    order is then shuffled so training does not see lengths in a rising pattern. All randomness
    comes from rng; with shuffle=False the result depends only on the inputs.
    """
    if len(src_ids) != len(tgt_ids):
        raise ValueError(f"{len(src_ids)} sources but {len(tgt_ids)} targets")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if shuffle and rng is None:
        raise ValueError("shuffle=True needs an rng (np.random.default_rng(seed)) so runs are reproducible")
    empty = next((i for i, seq in enumerate(src_ids) if len(seq) == 0), None)
    if empty is not None:
        # An all-pad source row would leave attention nothing to attend to (NaN softmax).
        raise ValueError(f"example {empty} has an empty source sequence")

    order = rng.permutation(len(src_ids)) if shuffle else np.arange(len(src_ids))
    if bucket:
        chunk = batch_size * bucket_batches
        order = np.concatenate([sorted(order[start:start + chunk],
                                       key=lambda i: (len(src_ids[i]), len(tgt_ids[i])))
                                for start in range(0, len(order), chunk)] or [order])
    groups = [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
    if shuffle and bucket:
        groups = [groups[i] for i in rng.permutation(len(groups))]

    batches = []
    for group in groups:
        targets = [list(tgt_ids[i]) for i in group]
        batches.append(Batch(
            src=pad_batch([src_ids[i] for i in group], pad_id),
            tgt_in=pad_batch([[bos_id] + t for t in targets], pad_id),
            tgt_out=pad_batch([t + [eos_id] for t in targets], pad_id),
            n_tokens=sum(len(t) + 1 for t in targets),
        ))
    return batches
