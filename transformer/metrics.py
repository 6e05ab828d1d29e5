"""How good are the translations? Scores computed on the host from token lists and strings.

    scores = translation_scores(hypotheses, references, hypothesis_texts, reference_texts,
                                tokenize=bleu_tokenization(kind))
    scores["exact_match"], scores["token_accuracy"], scores["bleu"], scores["chrf"]

Exact match is the honest score for the built-in tasks, whose targets are a function of the
source. BLEU and chrF are the usual scores for real language pairs. A BLEU number means nothing
without the tokenisation it counted words with, so both are computed on the detokenised text and
the result names it ("bleu_tokenize"): sacrebleu's "13a" for word-level text, its "char" for
character-level targets (a sentence of one long "word" has no word 2-grams, and 13a BLEU would be
0 however good it is). sacrebleu is used when installed; the built-in BLEU and chrF below follow
its default settings to the last detail, so a score means the same with it or without it.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from typing import Sequence

Tokens = Sequence[str]


def exact_match(hypotheses: Sequence[Tokens], references: Sequence[Tokens]) -> float:
    """Fraction of sentences translated exactly right, token for token."""
    _check_lengths(hypotheses, references)
    if not references:
        return 0.0
    return sum(list(h) == list(r) for h, r in zip(hypotheses, references)) / len(references)


def token_accuracy(hypotheses: Sequence[Tokens], references: Sequence[Tokens]) -> float:
    """Fraction of reference tokens matched at the same position by the hypothesis.

    Position by position, so a hypothesis that drops one early word is punished for every word
    after it: a strict score that moves together with exact match. Extra hypothesis tokens past
    the reference's end count as nothing, but the reference's own length is the denominator.
    """
    _check_lengths(hypotheses, references)
    total = sum(len(r) for r in references)
    if total == 0:
        return 0.0
    correct = sum(sum(a == b for a, b in zip(h, r)) for h, r in zip(hypotheses, references))
    return correct / total


# -- the words BLEU counts -----------------------------------------------------------------------

# mteval-v13a.pl, the WMT scoring script, cuts off every ASCII punctuation mark and symbol except
# the four that can sit inside a word or a number: apostrophe, comma, hyphen and period.
_ASCII_SYMBOLS = "".join(chr(c) for c in range(0x20, 0x7F) if not chr(c).isalnum() and chr(c) not in "',-.")
_13A_RULES = [
    (re.compile(f"([{re.escape(_ASCII_SYMBOLS)}])"), r" \1 "),
    (re.compile(r"([^0-9])([.,])"), r"\1 \2 "),     # a period or comma not after a digit ...
    (re.compile(r"([.,])([^0-9])"), r" \1 \2"),     # ... or not before one: "3.5" and "1,000" stay whole
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),         # a hyphen after a digit: "1990-2000"
]


def tokenize_13a(text: str) -> list[str]:
    """Words as sacrebleu's default "13a" tokeniser (mteval-v13a) sees them: punctuation cut off.

    The rules are regular expressions applied in turn, to the line padded with one space on each
    side; the padding matters, because it lets a period at the very start count as "not after a
    digit". Trailing whitespace is dropped first, as sacrebleu does, so a final "-\\n" is kept.
    """
    text = text.rstrip().replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    for escaped, plain in (("&quot;", '"'), ("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">")):
        text = text.replace(escaped, plain)
    text = f" {text} "
    for rule, replacement in _13A_RULES:
        text = rule.sub(replacement, text)
    return text.split()


def tokenize_char(text: str) -> list[str]:
    """Every character but whitespace, as sacrebleu's "char" tokeniser: BLEU over characters."""
    return [c for c in text if not c.isspace()]


BLEU_TOKENIZERS = {"13a": tokenize_13a, "char": tokenize_char}


def bleu_tokenization(kind) -> str:
    """The sacrebleu tokenisation that suits a run's target tokens: "char" for characters, else "13a"
    (words and BPE pieces). `kind`: the target's kind, or a tokenizers.Tokenizers pair."""
    kind = getattr(kind, "target", kind)
    return "char" if kind == "char" else "13a"


# -- BLEU ----------------------------------------------------------------------------------------

def _ngrams(tokens: Tokens, n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def corpus_bleu(hypotheses: Sequence[Tokens], references: Sequence[Tokens], max_order: int = 4,
                smooth: str = "exp", effective_order: bool = False) -> float:
    """Corpus BLEU (Papineni et al., 2002) in 0..100 of token lists, one reference per sentence.

    Clipped n-gram matches and hypothesis n-grams are summed over the whole corpus first, then
    combined: BLEU = BP * exp(mean_n log p_n), with the brevity penalty BP = exp(1 - r/c) when the
    hypotheses are shorter in total (c tokens) than the references (r). The edge cases follow
    sacrebleu's defaults, so that the same tokens give the same number:
    - no match of any order: 0;
    - an order with matches but none right: 0 with smooth="none"; with smooth="exp" (mteval's),
      its precision is 1 / (2^k * candidates), k counting such orders from 1;
    - an order with no candidates at all (every hypothesis too short): 0, unless effective_order,
      which averages over the orders before it instead (sensible only for single sentences).
    Precisions are percentages before the log, as in sacrebleu, so the two agree to the last bit.
    """
    if smooth not in ("exp", "none"):
        raise ValueError(f"unknown smoothing {smooth!r}; use 'exp' (sacrebleu's default) or 'none'")
    _check_lengths(hypotheses, references)
    matches = [0] * max_order
    candidates = [0] * max_order
    hyp_length = ref_length = 0
    for hyp, ref in zip(hypotheses, references):
        hyp_length += len(hyp)
        ref_length += len(ref)
        for n in range(1, max_order + 1):
            hyp_counts, ref_counts = _ngrams(hyp, n), _ngrams(ref, n)
            matches[n - 1] += sum(min(count, ref_counts[gram]) for gram, count in hyp_counts.items())
            candidates[n - 1] += max(len(hyp) - n + 1, 0)
    if not any(matches):
        return 0.0
    precisions = []
    halving = 1
    for right, total in zip(matches, candidates):
        if total == 0:
            if not effective_order:
                return 0.0
            break
        if right == 0 and smooth == "none":
            return 0.0
        if right == 0:
            halving *= 2
            precisions.append(100.0 / (halving * total))
        else:
            precisions.append(100.0 * right / total)
    brevity_penalty = 1.0 if hyp_length >= ref_length else math.exp(1 - ref_length / hyp_length)
    return brevity_penalty * math.exp(sum(math.log(p) for p in precisions) / len(precisions))


def bleu(hypothesis_texts: Sequence[str], reference_texts: Sequence[str], tokenize: str = "13a") -> float:
    """sacrebleu's corpus BLEU of detokenised sentences, with its default settings: `tokenize`
    ("13a" or "char"), mixed case, smoothing "exp", no effective order."""
    split = BLEU_TOKENIZERS[tokenize]
    return corpus_bleu([split(h) for h in hypothesis_texts], [split(r) for r in reference_texts])


# -- chrF ----------------------------------------------------------------------------------------

def chrf(hypothesis_texts: Sequence[str], reference_texts: Sequence[str], char_order: int = 6,
         beta: float = 2) -> float:
    """chrF (Popović, 2015) in 0..100, as sacrebleu computes it by default: character n-grams of
    orders 1..6 with whitespace removed, no word n-grams, recall weighted beta=2 times precision.

    Like BLEU, counts are summed over the corpus first. Per order they give a precision and a
    recall; the two are averaged over the orders that both the hypotheses and the references
    have, and combined into one F-score. Two details of sacrebleu's that change numbers:
    a sentence whose reference is too short for an order adds nothing to that order's hypothesis
    count, and an order missing on either side is left out of the averages, not counted as 0.
    """
    _check_lengths(hypothesis_texts, reference_texts)
    hyp_total, ref_total, matched = [0] * char_order, [0] * char_order, [0] * char_order
    for hyp, ref in zip(hypothesis_texts, reference_texts):
        hyp, ref = "".join(hyp.split()), "".join(ref.split())
        for n in range(1, char_order + 1):
            hyp_counts = Counter(hyp[i:i + n] for i in range(len(hyp) - n + 1))
            ref_counts = Counter(ref[i:i + n] for i in range(len(ref) - n + 1))
            if ref_counts:
                hyp_total[n - 1] += sum(hyp_counts.values())
            ref_total[n - 1] += sum(ref_counts.values())
            matched[n - 1] += sum(min(count, ref_counts[gram]) for gram, count in hyp_counts.items())
    orders = [n for n in range(char_order) if hyp_total[n] > 0 and ref_total[n] > 0]
    if not orders:
        return 0.0
    precision = sum(matched[n] / hyp_total[n] for n in orders) / len(orders)
    recall = sum(matched[n] / ref_total[n] for n in orders) / len(orders)
    if precision + recall == 0:
        return 0.0
    weight = beta ** 2
    return 100 * ((1 + weight) * precision * recall / (weight * precision + recall))


# -- all scores of a decoded set -----------------------------------------------------------------

def translation_scores(hypotheses: Sequence[Tokens], references: Sequence[Tokens],
                       hypothesis_texts: Sequence[str] | None = None,
                       reference_texts: Sequence[str] | None = None, tokenize: str = "13a",
                       use_sacrebleu: bool = True) -> dict:
    """exact_match, token_accuracy (fractions, of the token lists); bleu, chrf (0..100, of the texts).

    The texts are the detokenised sentences (default: the tokens joined by spaces); `tokenize`
    is how BLEU splits them, "13a" or "char" (see bleu_tokenization). "bleu_tokenize" and
    "bleu_source" ("sacrebleu" or "built-in") in the result say how BLEU and chrF were computed;
    the number is the same either way.
    """
    if tokenize not in BLEU_TOKENIZERS:
        raise ValueError(f"unknown BLEU tokenisation {tokenize!r}; use one of {sorted(BLEU_TOKENIZERS)}")
    scores = {"exact_match": exact_match(hypotheses, references),
              "token_accuracy": token_accuracy(hypotheses, references),
              "sentences": len(references), "bleu_tokenize": tokenize}
    hypothesis_texts = [" ".join(h) for h in hypotheses] if hypothesis_texts is None else list(hypothesis_texts)
    reference_texts = [" ".join(r) for r in references] if reference_texts is None else list(reference_texts)
    _check_lengths(hypothesis_texts, reference_texts)
    sacrebleu = None
    if use_sacrebleu and reference_texts:          # sacrebleu refuses an empty corpus
        try:
            import sacrebleu
        except ImportError:
            pass
    if sacrebleu is None:
        scores["bleu"] = bleu(hypothesis_texts, reference_texts, tokenize)
        scores["chrf"] = chrf(hypothesis_texts, reference_texts)
        scores["bleu_source"] = "built-in"
    else:
        scores["bleu"] = float(sacrebleu.corpus_bleu(hypothesis_texts, [reference_texts], tokenize=tokenize).score)
        scores["chrf"] = float(sacrebleu.corpus_chrf(hypothesis_texts, [reference_texts]).score)
        scores["bleu_source"] = "sacrebleu"
    return scores


def _check_lengths(hypotheses, references):
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
