"""How a run cuts each side's sentences into tokens: "word", "char", or a learned BPE per side.

    tokenizers = learn_tokenizers(settings, train_pairs)   # Tokenizers(source=..., target=...)
    tokenize(text, tokenizers.source)                       # data.tokenize takes a BPE as its kind too
    tokenizers_from_dict(tokenizers_to_dict(tokenizers))    # JSON-able, for checkpoints and .safetensors

Word and character tokens need no state: the settings' string says it all. BPE merges are
learned from the training pairs (never the held-out ones) and then belong to the run, like its
vocabularies: a checkpoint stores them, a resumed run and `translate` reuse them, and nothing
learns them again. settings["tokenizer"] stays the string ("bpe"); the learned objects travel
next to it, in a Tokenizers pair.

--joint-vocab learns one BPE on both sides and builds one vocabulary from it, shared by source
and target, as OpenNMT-py's share_vocab and fairseq's --joined-dictionary do: a name or number
is then the same piece, and the same id, on both sides.
"""
from __future__ import annotations

import time
from typing import NamedTuple, Union

from .bpe import BPE, learn_for_pairs
from .errors import UsageError

TOKENIZER_KINDS = ("word", "char", "bpe")
Kind = Union[str, BPE]


class Tokenizers(NamedTuple):
    """The source side's and the target side's tokenizer ("word", "char" or a BPE; joint: one BPE twice)."""

    source: Kind
    target: Kind

    @property
    def joint(self) -> bool:
        return isinstance(self.source, BPE) and self.source is self.target


def sides(kind) -> Tokenizers:
    """A Tokenizers pair from what a caller holds: a pair already, or one kind for both sides."""
    return kind if isinstance(kind, Tokenizers) else Tokenizers(kind, kind)


def check_tokenizer_flags(settings: dict, given: dict):
    """--vocab-size and --joint-vocab belong to --tokenizer bpe, --min-freq to word and char tokens."""
    if settings["tokenizer"] != "bpe":
        wrong = [flag for key, flag in (("vocab_size", "--vocab-size"), ("joint_vocab", "--joint-vocab"))
                 if given.get(key)]
        if wrong:
            raise UsageError(f"{' and '.join(wrong)} size BPE pieces: add --tokenizer bpe "
                             f"(the run's tokenizer is {settings['tokenizer']})")
    elif settings["min_freq"] != 1:
        raise UsageError(f"--min-freq {settings['min_freq']} does not apply to --tokenizer bpe: its vocabulary "
                         f"is every BPE piece (every training character among them), sized by --vocab-size")


def learn_tokenizers(settings: dict, train_pairs) -> Tokenizers:
    """The run's tokenizers: its string for word or char tokens, or BPE merges learned on `train_pairs`."""
    kind = settings["tokenizer"]
    if kind != "bpe":
        return Tokenizers(kind, kind)
    started = time.perf_counter()
    source, target = learn_for_pairs(train_pairs, settings["vocab_size"], joint=settings["joint_vocab"])
    tokenizers = Tokenizers(source, target)
    where = (f"one for both sides, {len(source.merges)} merges" if tokenizers.joint else
             f"{len(source.merges)} source merges, {len(target.merges)} target merges")
    print(f"BPE: learned on the {len(train_pairs)} training pairs in {time.perf_counter() - started:.1f} s ({where})")
    return tokenizers


def tokenizers_to_dict(tokenizers: Tokenizers) -> dict:
    """{"source": KIND, "target": KIND}, a KIND being "word", "char" or a BPE's to_dict(); a joint BPE
    is stored once, as {"joint": BPE.to_dict()}."""
    if tokenizers.joint:
        return {"joint": tokenizers.source.to_dict()}
    return {side: kind if isinstance(kind, str) else kind.to_dict() for side, kind in zip(tokenizers._fields,
                                                                                          tokenizers)}


def tokenizers_from_dict(state) -> Tokenizers:
    """Inverse of tokenizers_to_dict; ValueError saying what is wrong with a malformed one."""
    if not isinstance(state, dict):
        raise ValueError(f"the tokenizers should be a JSON object, not {type(state).__name__}")
    if "joint" in state:
        if set(state) != {"joint"}:
            raise ValueError("a joint BPE is stored alone, as {'joint': ...}")
        shared = _one("joint", state["joint"])
        if not isinstance(shared, BPE):
            raise ValueError("'joint' should be a BPE's alphabet and merges")
        return Tokenizers(shared, shared)
    if set(state) != {"source", "target"}:
        raise ValueError(f"the tokenizers should have 'source' and 'target', got {sorted(map(str, state))}")
    return Tokenizers(_one("source", state["source"]), _one("target", state["target"]))


def _one(side: str, state) -> Kind:
    if state in ("word", "char"):
        return state
    if not isinstance(state, dict):
        raise ValueError(f"the {side} tokenizer should be 'word', 'char' or a BPE's alphabet and merges")
    try:
        return BPE.from_dict(state)
    except ValueError as error:
        raise ValueError(f"the {side} tokenizer: {error}") from None


def kind_name(kind: Kind) -> str:
    """"word", "char" or "bpe": what settings["tokenizer"] says for this kind."""
    return kind if isinstance(kind, str) else "bpe"
