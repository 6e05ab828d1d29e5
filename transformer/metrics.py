"""How good are the translations? Scores computed on the host from token lists and strings.

    scores = translation_scores(hypotheses, references)   # lists of token lists
    scores["exact_match"], scores["token_accuracy"], scores["bleu"], scores.get("chrf")

Exact match is the honest score for the built-in tasks, whose targets are a function of the
source. BLEU and chrF are the usual scores for real language pairs: they come from sacrebleu
when it is installed (the numbers papers report), else BLEU from the small corpus_bleu below
and no chrF.
"""
from __future__ import annotations

import math
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


def _ngrams(tokens: Tokens, n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def corpus_bleu(hypotheses: Sequence[Tokens], references: Sequence[Tokens], max_order: int = 4) -> float:
    """Corpus BLEU (Papineni et al., 2002) in 0..100, one reference per sentence, no smoothing.

    Clipped n-gram matches and candidate n-gram counts are summed over the whole corpus first,
    then combined: BLEU = BP * exp(mean_n log p_n), with the brevity penalty
    BP = exp(1 - r/c) when the hypotheses are shorter in total (c < r) than the references.
    Any n-gram order with no match at all makes BLEU 0, as in the original definition.
    """
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
    if hyp_length == 0 or min(matches) == 0:
        return 0.0
    log_precision = sum(math.log(m / c) for m, c in zip(matches, candidates)) / max_order
    brevity_penalty = 1.0 if hyp_length >= ref_length else math.exp(1 - ref_length / hyp_length)
    return 100.0 * brevity_penalty * math.exp(log_precision)


def translation_scores(hypotheses: Sequence[Tokens], references: Sequence[Tokens],
                       hypothesis_texts: Sequence[str] | None = None,
                       reference_texts: Sequence[str] | None = None) -> dict:
    """exact_match, token_accuracy (fractions) and bleu (0..100); chrf (0..100) with sacrebleu.

    The texts, when given, are the detokenized sentences: sacrebleu tokenizes on its own, so it
    gets those; the built-in BLEU uses the token lists. "bleu_source" says which one was used.
    """
    scores = {"exact_match": exact_match(hypotheses, references),
              "token_accuracy": token_accuracy(hypotheses, references),
              "sentences": len(references)}
    if hypothesis_texts is None:
        hypothesis_texts = [" ".join(h) for h in hypotheses]
    if reference_texts is None:
        reference_texts = [" ".join(r) for r in references]
    try:
        import sacrebleu
    except ImportError:
        scores["bleu"] = corpus_bleu(hypotheses, references)
        scores["bleu_source"] = "built-in"
        return scores
    scores["bleu"] = float(sacrebleu.corpus_bleu(list(hypothesis_texts), [list(reference_texts)]).score)
    scores["chrf"] = float(sacrebleu.corpus_chrf(list(hypothesis_texts), [list(reference_texts)]).score)
    scores["bleu_source"] = "sacrebleu"
    return scores


def _check_lengths(hypotheses, references):
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
