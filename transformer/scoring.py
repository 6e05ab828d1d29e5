"""Decoding held-out or given sentences with a model, and scoring the translations against references.

translate_ids decodes id lists in batches of similar length (greedy or beam search); score_pairs
turns a model and (source, reference) pairs into the scores of metrics.translation_scores;
format_scores and print_examples are how train.py shows them.
"""
from __future__ import annotations

import minigrad

from . import metrics
from .corpus import encode_sources
from .data import Vocab, detokenize, pad_batch, tokenize
from .decoding import beam_search, greedy_decode
from .tokenizers import sides


def translate_ids(model, sources: list, tgt_vocab: Vocab, device, beam: int | None = None,
                  batch_size: int = 250, n_best: int | None = None, length_penalty: float = 0.6) -> list:
    """Output id lists (no <bos>/<eos>) for source id lists, decoded in batches of similar length.

    With `n_best=N`, each output is instead a list of the N best decoding.Hypothesis (tokens, log_prob,
    score), best first: beam search's N best, or greedy's one hypothesis (N = 1) without a beam.
    `length_penalty` is beam search's alpha (the score's, for greedy)."""
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    outputs = [None] * len(sources)
    model.eval()
    with minigrad.no_grad():
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            src = minigrad.tensor(pad_batch([sources[i] for i in chunk], model.pad_id), device=device)
            max_len = min(model.max_len - 1, 2 * src.shape[1] + 10)
            if beam and beam > 1:
                decoded = beam_search(model, src, beam_size=beam, max_len=max_len, bos_id=tgt_vocab.bos_id,
                                      eos_id=tgt_vocab.eos_id, length_penalty=length_penalty, n_best=n_best)
            elif n_best is not None:
                if n_best != 1:
                    raise ValueError(f"n_best={n_best} needs a beam of at least {n_best}; greedy decoding has one")
                decoded = [[hypothesis] for hypothesis in greedy_decode(
                    model, src, max_len, tgt_vocab.bos_id, tgt_vocab.eos_id, return_scores=True,
                    length_penalty=length_penalty)]
            else:
                decoded = greedy_decode(model, src, max_len, tgt_vocab.bos_id, tgt_vocab.eos_id)
            for i, ids in zip(chunk, decoded):
                outputs[i] = ids if n_best is not None else [int(token) for token in ids]
    return outputs


def score_pairs(model, pairs, src_vocab, tgt_vocab, kind, device, beam=None, batch_size=250,
                length_penalty: float = 0.6) -> tuple[dict, list]:
    """(scores, hypotheses as text) of decoding every source of `pairs` against its reference.

    `kind`: both sides' tokenizer ("word", "char") or a tokenizers.Tokenizers pair. BLEU and chrF
    are computed on the detokenised text; exact match and token accuracy on the target tokens, a
    learned tokenizer's hypothesis tokenized again from its text (so that "st"+"ation" and
    "station" count as the same word). A pair whose source is longer than the model takes is
    left out and counted in scores["skipped_too_long"]; its hypothesis is None.
    """
    source, target = sides(kind)
    encoded = encode_sources([s for s, _ in pairs], src_vocab, source, model.max_len, too_long="skip")
    fitting = [i for i, ids in enumerate(encoded) if ids is not None]
    outputs = translate_ids(model, [encoded[i] for i in fitting], tgt_vocab, device, beam=beam,
                            batch_size=batch_size, length_penalty=length_penalty)
    hypotheses = [tgt_vocab.decode(ids) for ids in outputs]
    texts = [detokenize(h, target) for h in hypotheses]
    if not isinstance(target, str):
        hypotheses = [tokenize(text, target) for text in texts]
    references = [pairs[i][1] for i in fitting]
    scores = metrics.translation_scores(hypotheses, [tokenize(t, target) for t in references], texts, references,
                                        tokenize=metrics.bleu_tokenization(target))
    if len(fitting) < len(pairs):
        scores["skipped_too_long"] = len(pairs) - len(fitting)
    all_texts = [None] * len(pairs)
    for i, text in zip(fitting, texts):
        all_texts[i] = text
    return scores, all_texts


def print_examples(pairs, hypotheses, count: int, kind):
    """The first `count` pairs with the model's translation, each marked ok or WRONG (or skipped: None)."""
    target = sides(kind).target
    for (source, reference), hypothesis in list(zip(pairs, hypotheses))[:count]:
        if hypothesis is None:
            print(f"  source:     {source}\n  (skipped: longer than the model's max_len)")
            continue
        mark = "ok" if tokenize(hypothesis, target) == tokenize(reference, target) else "WRONG"
        print(f"  source:     {source}\n  reference:  {reference}\n  model:      {hypothesis}   [{mark}]")


def format_scores(scores: dict) -> str:
    """One line of scores, as train.py prints them; BLEU names its tokenisation, without which
    the number cannot be compared with another."""
    text = (f"exact match {100 * scores['exact_match']:.1f}%  token accuracy {100 * scores['token_accuracy']:.1f}%  "
            f"BLEU {scores['bleu']:.1f}")
    if "bleu_tokenize" in scores:
        text += f" (tokenize {scores['bleu_tokenize']})"
    if "chrf" in scores:
        text += f"  chrF {scores['chrf']:.1f}"
    text += f"  on {scores['sentences']} sentences"
    if scores.get("skipped_too_long"):
        text += f" ({scores['skipped_too_long']} skipped: source longer than the model's max_len)"
    return text
