"""Subword tokens by byte-pair encoding (Sennrich et al., 2016), learned from training sentences.

    bpe = BPE.learn(train_sentences, vocab_size=8000)      # one side; BPE.learn(src + tgt, ...) is joint
    pieces = bpe.tokenize("Where is the station?")         # e.g. ['Where', ' is', ' the', ' st', 'ation', '?']
    bpe.detokenize(pieces)                                  # 'Where is the station?', exactly
    vocab = Vocab(bpe.symbols())                            # every piece it can make: vocab_size ids in all
    BPE.from_dict(bpe.to_dict())                            # JSON-able, for checkpoints and file metadata

A word seen often stays one token; a rare word is spelled with the pieces that frequent words
share ("un", "break", "able"), so no training word is ever <unk> and sequences stay short.
Learning starts from single characters and repeats one step: join the pair of adjacent symbols
that is most frequent in the training text into a new symbol, until the vocabulary is full.
Encoding replays those merges, in the order they were learned, on new text.

How spaces are marked: they are not replaced at all. A piece is a piece of the text itself, and
the whitespace before a word belongs to the word's first piece (" station"). Decoding is then
"".join(pieces), which gives back any sentence exactly -- runs of spaces, tabs, leading and
trailing whitespace, combining accents, Hangul, emoji -- with no rule to learn and nothing to
escape. SentencePiece writes a space as "▁" so that its pieces print visibly; it must then treat a
real "▁" in the text specially, and by default it collapses whitespace runs. Byte-level BPE is
exact too, but its pieces can be half a Hangul syllable or a third of an emoji, not text one can
read. Use readable(pieces) to print pieces with the spaces shown as "▁".
"""
from __future__ import annotations

import heapq
import re
import unicodedata
from collections import Counter, defaultdict
from typing import Iterable, Sequence

N_SPECIAL = 4        # the ids data.Vocab keeps for <pad>, <unk>, <bos>, <eos>

_RUN = re.compile(r"\s*\S+|\s+")    # the whitespace before some non-space text; or whitespace at the end


# -- words: the stretches of text merges never cross ----------------------------------------------

def split_words(text: str) -> list[str]:
    """Cut text into words, the units BPE works inside; "".join(split_words(text)) == text.

    A word is the whitespace before it plus a run of letters and digits, or a run of
    punctuation and symbols: "Hola, ¿qué tal?" -> ["Hola", ",", " ¿", "qué", " tal", "?"].
    Punctuation apart, "Hola" and "Hola," share their pieces. Accents written as combining marks,
    variation selectors and joiners stay with the character before them, so "e\\u0301" is never cut.
    """
    return [word for run in _RUN.findall(text) for word in _split_punctuation(run)]


def _split_punctuation(run: str) -> list[str]:
    """A run (leading whitespace, then non-space characters) cut where punctuation starts or ends."""
    words, start, was_punctuation = [], 0, None
    for i, char in enumerate(run):
        category = unicodedata.category(char)
        if char.isspace() or category[0] == "M" or category == "Cf":
            continue                        # whitespace leads the word; marks follow their character
        is_punctuation = category[0] in "PS"
        if was_punctuation is not None and is_punctuation != was_punctuation:
            words.append(run[start:i])
            start = i
        was_punctuation = is_punctuation
    words.append(run[start:])
    return words


def _merge(symbols: list[str], pair: tuple[str, str], merged: str, frequency: int = 0,
           change: dict | None = None) -> list[tuple[str, str]]:
    """Merge each adjacent occurrence of `pair` in `symbols` into `merged`, left to right, in place.

    With `change`, also count there how the word's pairs changed, `frequency` times each, and
    return the pairs that the merges made. Merging (a, b) in "x a b y" takes away (x, a), (a, b)
    and (b, y) and brings (x, ab) and (ab, y); each merge is such an edit of the list as it
    stands, so back-to-back occurrences ("a b a b") need no special case.
    """
    first, second = pair
    made = []
    j = 0
    while True:
        try:
            j = symbols.index(first, j, len(symbols) - 1)     # a `first` with a symbol after it
        except ValueError:
            return made
        if symbols[j + 1] == second:
            if change is not None:
                change[pair] -= frequency
                if j > 0:
                    change[symbols[j - 1], first] -= frequency
                    change[symbols[j - 1], merged] += frequency
                    made.append((symbols[j - 1], merged))
                if j + 2 < len(symbols):
                    change[second, symbols[j + 2]] -= frequency
                    change[merged, symbols[j + 2]] += frequency
                    made.append((merged, symbols[j + 2]))
            symbols[j:j + 2] = [merged]
        j += 1


def _pairs(symbols: Sequence[str]):
    return zip(symbols, symbols[1:])


# -- the tokenizer ---------------------------------------------------------------------------------

class BPE:
    """A learned list of merges, and the characters they start from; text -> pieces -> text."""

    kind = "bpe"

    def __init__(self, alphabet: Sequence[str], merges: Sequence[tuple[str, str]],
                 known: dict[str, list[str]] | None = None):
        """`known`: words whose pieces are known already; learning leaves every training word in
        its pieces, which saves encoding the training sentences again. Only a shortcut: _encode
        gives the same pieces."""
        self.alphabet = list(alphabet)
        self.merges = [tuple(pair) for pair in merges]
        self._rank = {pair: rank for rank, pair in reversed(list(enumerate(self.merges)))}
        self._known = dict(known or {})
        self._cache: dict[str, list[str]] = {}

    @classmethod
    def learn(cls, sentences: Iterable[str], vocab_size: int, min_frequency: int = 2,
              n_special: int = N_SPECIAL) -> "BPE":
        """Merges learned from `sentences` until there are `vocab_size` symbols, specials included.

        Every character of the sentences is kept, so each of them round-trips and encodes without
        <unk>; learning stops early when no pair is seen `min_frequency` times (a merge seen once
        only memorises one word). The most frequent pair is merged first; ties go to the pair
        that sorts first, so the merges depend on the sentences, never on their order.

        The pairs are counted once, over the table of distinct words and their frequencies; after a
        merge only the words that hold the merged pair change, and only the pairs next to each
        merge (see _merge). An index from each pair to the words that hold it finds those words
        (it may also list words that held the pair once: they are skipped), and a heap of
        (-count, pair) finds the best pair: a count that changes is pushed again, and an entry
        whose count is out of date is dropped when it comes to the top.
        """
        run_counts = Counter(run for sentence in sentences for run in _RUN.findall(sentence))
        word_counts = Counter()
        for run, count in run_counts.items():          # each distinct run cut once, however frequent
            for word in _split_punctuation(run):
                word_counts[word] += count
        char_counts = Counter()
        for word, count in word_counts.items():
            for char in word:
                char_counts[char] += count
        alphabet = sorted(char_counts, key=lambda char: (-char_counts[char], char))

        words = [list(word) for word in word_counts]
        frequency = list(word_counts.values())
        pair_count = defaultdict(int)
        holders = defaultdict(set)                      # pair -> indices of the words that hold it
        for i, symbols in enumerate(words):
            for pair in _pairs(symbols):
                pair_count[pair] += frequency[i]
                holders[pair].add(i)
        heap = [(-count, pair) for pair, count in pair_count.items()]
        heapq.heapify(heap)

        merges, new_symbols = [], set()
        room = vocab_size - n_special - len(alphabet)
        while len(new_symbols) < room and heap:
            negative_count, pair = heapq.heappop(heap)
            if pair_count.get(pair) != -negative_count:
                continue                                # out of date: the pair's count has changed
            if -negative_count < min_frequency:
                break
            merged = pair[0] + pair[1]                  # one string, shared by every word that has it
            merges.append(pair)
            new_symbols.add(merged)
            change = defaultdict(int)
            for i in holders.pop(pair):         # (some may no longer hold it: nothing happens to them)
                for made in _merge(words[i], pair, merged, frequency[i], change):
                    holders[made].add(i)
            for p, delta in change.items():
                if delta:
                    pair_count[p] += delta
                    if pair_count[p] > 0:
                        heapq.heappush(heap, (-pair_count[p], p))
                    else:
                        del pair_count[p]
        return cls(alphabet, merges, known=dict(zip(word_counts, words)))

    def tokenize(self, text: str) -> list[str]:
        """Pieces of `text`, word by word; a character never seen in training is a piece of its own
        (a Vocab maps it to <unk>)."""
        pieces = []
        for run in _RUN.findall(text):
            if run not in self._cache:
                if len(self._cache) > 100_000:          # a long stream of new text: start afresh
                    self._cache.clear()
                self._cache[run] = [piece for word in _split_punctuation(run)
                                    for piece in self._known.get(word) or self._encode(word)]
            pieces.extend(self._cache[run])
        return pieces

    def _encode(self, word: str) -> list[str]:
        """Replay the merges on one word: join the adjacent pair learned earliest, until none is known.

        The result is that of applying every merge in learned order, as learning did: merging a
        pair only creates pairs that were learned after it.
        """
        symbols, never = list(word), len(self.merges)
        while len(symbols) > 1:
            earliest = min([self._rank.get(pair, never) for pair in _pairs(symbols)])
            if earliest == never:
                break
            pair = self.merges[earliest]
            _merge(symbols, pair, pair[0] + pair[1])
        return symbols

    def detokenize(self, pieces: Sequence[str]) -> str:
        """The text of `pieces`: pieces are text, spaces included, so this is just their concatenation."""
        return "".join(pieces)

    def symbols(self) -> list[str]:
        """Every piece the tokenizer can produce from its alphabet: the characters, then the merged
        symbols in the order they were learned. Vocab(bpe.symbols()) has `vocab_size` entries."""
        return list(dict.fromkeys(self.alphabet + [a + b for a, b in self.merges]))

    def to_dict(self) -> dict:
        """{"alphabet": [char, ...], "merges": [[left, right], ...]}: strings in lists, for
        minigrad.save and, through json.dumps, for the string metadata of a safetensors file."""
        return {"alphabet": list(self.alphabet), "merges": [list(pair) for pair in self.merges]}

    @classmethod
    def from_dict(cls, state: dict) -> "BPE":
        """Inverse of to_dict; strict, because a model's ids depend on getting the same pieces back."""
        alphabet, merges = state.get("alphabet"), state.get("merges")
        if not isinstance(alphabet, (list, tuple)) or not all(isinstance(c, str) and len(c) == 1 for c in alphabet):
            raise ValueError("a saved BPE needs 'alphabet', a list of single characters")
        if not isinstance(merges, (list, tuple)) or not all(
                isinstance(m, (list, tuple)) and len(m) == 2 and all(isinstance(s, str) and s for s in m)
                for m in merges):
            raise ValueError("a saved BPE needs 'merges', a list of [left, right] pairs of strings")
        return cls(alphabet, merges)

    def __repr__(self) -> str:
        return f"BPE({len(self.alphabet)} characters, {len(self.merges)} merges)"


def learn_for_pairs(pairs: Sequence[tuple[str, str]], vocab_size: int, joint: bool = False,
                    **options) -> tuple[BPE, BPE]:
    """(source, target) tokenizers learned from sentence pairs: one per side, each of `vocab_size`
    symbols; or with joint=True one shared by both sides (the same object twice), for pairs of
    languages that share a script and many words (names, numbers, cognates)."""
    sources, targets = [s for s, _ in pairs], [t for _, t in pairs]
    if joint:
        shared = BPE.learn(sources + targets, vocab_size, **options)
        return shared, shared
    return BPE.learn(sources, vocab_size, **options), BPE.learn(targets, vocab_size, **options)


def readable(pieces: Sequence[str]) -> str:
    """Pieces for printing, one space apart, with the spaces inside them shown as "▁"."""
    return " ".join(piece.replace(" ", "\u2581") for piece in pieces)
