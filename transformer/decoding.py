"""Turning a trained model into output sentences: batched greedy decoding and beam search.

Both are incremental (`use_cache=True`): the source is encoded once, the cross-attention
keys/values of that memory are computed once, and each decoder self-attention keeps
the keys/values of the tokens so far, so a step costs one new token's work (see
Transformer.decode_step). `use_cache=False` re-runs the decoder over the whole prefix
at every step; it returns the same tokens and is there to check the cache against.

Token ids: every output sentence is returned without its BOS and EOS. The padding id
is never generated (its logit is blocked), so a generated prefix never masks itself.

Length penalty (beam search): GNMT's lp(L) = ((5 + L) / 6) ** alpha (Wu et al. 2016),
where L counts the generated tokens including the EOS; a finished hypothesis is ranked
by log P / lp(L). alpha = 0 ranks by plain log-probability.

Scores: `greedy_decode(..., return_scores=True)` and `beam_search(..., n_best=N)` return
Hypothesis(tokens, log_prob, score) tuples instead of bare id lists. log_prob is the sum of
the log-probabilities of the generated tokens, the EOS included, under the distribution the
search draws from (the model's softmax with padding blocked); score is log_prob / lp(L).
A hypothesis cut at the decoding budget has no EOS: its tokens fill the whole budget
(len(tokens) == max_len, L == max_len) and its log_prob covers those tokens only.

Lengths: a source longer than the model's max_len (the positions it has) is refused with a
ValueError naming the sentence, its length and max_len, before anything runs: it is never cut.
Padding columns beyond max_len are dropped (they change nothing). The decoding budget
max_len is capped at the model's max_len, the most positions its decoder has.
"""
import math
from typing import NamedTuple

import minigrad
import minigrad.functional as F

from .masks import padding_mask


def length_penalty(length, alpha):
    """GNMT length penalty ((5 + L) / 6) ** alpha."""
    return ((5.0 + length) / 6.0) ** alpha


class Hypothesis(NamedTuple):
    """One output sentence with its scores (see the module docstring)."""

    tokens: list      # generated ids, without BOS and EOS
    log_prob: float   # sum of the token log-probabilities, the EOS included when there is one
    score: float      # log_prob / length_penalty(L, alpha), what beam search ranks by


def _fit_lengths(model, src, max_len):
    """(src, max_len) that fit the model's positions: one clear error for a source that is too long,
    trailing all-padding columns beyond max_len dropped, the decoding budget capped at max_len."""
    limit = getattr(model, "max_len", None)
    if limit is None:
        return src, max_len
    if src.shape[1] > limit:
        lengths = (src != model.pad_id).sum(-1).tolist()
        if (src[:, limit:] != model.pad_id).any().item():
            row = max(range(len(lengths)), key=lengths.__getitem__)
            raise ValueError(f"source sentence {row} of the batch has {lengths[row]} tokens, more than the model's "
                             f"max_len={limit}: it cannot be translated without cutting it (split it, or use a "
                             f"model built with a larger max_len)")
        src = src[:, :limit]
    return src, min(max_len, limit)


class _Stepper:
    """Next-token log-probabilities for a batch of prefixes, with or without the key/value cache."""

    def __init__(self, model, memory, src, src_mask, use_cache):
        self.model, self.memory, self.src, self.src_mask = model, memory, src, src_mask
        self.cache = model.new_cache() if use_cache else None

    def logits(self, tokens, position):
        """tokens (N, >= position + 1) ids, the prefix in columns 0..position -> (N, V) scores of the
        next token, padding blocked (-inf)."""
        model = self.model
        if self.cache is not None:  # earlier tokens are in the cache: only the newest one goes in
            logits = model.decode_step(tokens[:, position], self.memory, self.src_mask, self.cache, position)
        else:
            # Re-run the decoder over the whole prefix; only the last position needs the generator.
            prefix = tokens[:, :position + 1]
            logits = model.generator(model.decode_hidden(prefix, self.memory, self.src, self.src_mask)[:, -1])
        logits[:, model.pad_id] = -math.inf
        return logits

    def log_probs(self, tokens, position):
        """The same as log-probabilities (what beam search adds up)."""
        return F.log_softmax(self.logits(tokens, position), -1)

    def reorder(self, index):
        """Follow the beams that survived: row i of the batch now continues row index[i]."""
        if self.cache is not None:
            self.model.reorder_cache(self.cache, index)
        self.memory, self.src, self.src_mask = self.memory[index], self.src[index], self.src_mask[index]


class _inference:
    """eval() + no_grad() for the duration, restoring the model's previous mode afterwards."""

    def __init__(self, model):
        self.model, self.no_grad = model, minigrad.no_grad()

    def __enter__(self):
        self.was_training = self.model.training
        self.model.eval()
        self.no_grad.__enter__()

    def __exit__(self, *exc):
        self.no_grad.__exit__(*exc)
        self.model.train(self.was_training)
        return False


def _strip(tokens, eos_id):
    return tokens[:tokens.index(eos_id)] if eos_id in tokens else tokens


def greedy_decode(model, src, max_len, bos_id, eos_id, use_cache=True, return_scores=False, length_penalty=0.0):
    """src (B, S) ids -> B lists of at most `max_len` generated ids, picking the most likely token each step.

    Stops as soon as every sentence has produced its EOS (one host check per step). With
    `return_scores`, B Hypothesis(tokens, log_prob, score) instead, score = log_prob / lp(L, length_penalty)
    (the penalty changes only the score: greedy ranks nothing).
    """
    src, max_len = _fit_lengths(model, src, max_len)
    with _inference(model):
        src_mask = padding_mask(src, model.pad_id)
        stepper = _Stepper(model, model.encode(src, src_mask), src, src_mask, use_cache)
        # Column 0 holds BOS, column p + 1 the token generated at step p; written in place.
        tokens = minigrad.full((src.shape[0], max_len + 1), bos_id, dtype=minigrad.int64, device=src.device)
        finished = minigrad.zeros(src.shape[0], dtype=minigrad.bool, device=src.device)
        log_prob = 0.0  # (B,) once the first step has run: each sentence's tokens up to and including its EOS
        length = 0
        for position in range(max_len):
            logits = stepper.logits(tokens, position)
            token = logits.argmax(-1)  # (B,): softmax keeps the order, so no softmax unless scores are wanted
            if return_scores:
                chosen = F.log_softmax(logits, -1).gather(-1, token.unsqueeze(-1)).squeeze(-1)
                log_prob = log_prob + chosen.masked_fill(finished, 0.0)  # nothing counts after a sentence's EOS
            tokens[:, position + 1] = token
            length = position + 1
            finished = finished | (token == eos_id)
            if finished.all().item():
                break
    outputs = [_strip(row[1:], eos_id) for row in tokens[:, :length + 1].tolist()]
    if not return_scores:
        return outputs
    log_probs = log_prob.tolist() if length else [0.0] * len(outputs)
    return [_hypothesis(ids, total, len(ids) + (len(ids) < max_len), length_penalty)
            for ids, total in zip(outputs, log_probs)]


def _hypothesis(tokens, log_prob, length, alpha):
    return Hypothesis(tokens, log_prob, log_prob / length_penalty(length, alpha))


def beam_search(model, src, beam_size=4, max_len=100, bos_id=2, eos_id=3, length_penalty=0.6, use_cache=True,
                n_best=None):
    """src (B, S) ids -> B lists of ids: the best finished hypothesis of a beam search per sentence.

    With `n_best=N` (1 <= N <= beam_size), B lists of the N best Hypothesis(tokens, log_prob, score)
    instead, best score first (fewer only when the search space has fewer, as with a tiny vocabulary);
    the first is the hypothesis returned without n_best.

    Every step each live beam is extended by every token; of the 2K best candidates of a
    sentence (K = beam_size), an EOS ranked among the first K ends a hypothesis (scored
    log P / lp(L)), and the K best others live on. A sentence stops only when no live beam
    can still beat its best finished hypothesis: log-probabilities only fall as a beam
    grows, but lp grows too, so the bound is score / lp(max_len), not the current rank --
    stopping at the first EOS would favour short outputs. At max_len, live beams are
    ranked with the finished ones. With n_best=N the bound is the N-th best finished score, so the
    search goes on until none of the N can be displaced. The default bos/eos ids are those of transformer.data.
    """
    alpha, K = length_penalty, beam_size
    lp = globals()["length_penalty"]
    wanted = 1 if n_best is None else n_best
    if not 1 <= wanted <= K:
        raise ValueError(f"n_best must be between 1 and beam_size={K}, got {n_best}")
    src, max_len = _fit_lengths(model, src, max_len)
    batch = src.shape[0]
    with _inference(model):
        src_mask = padding_mask(src, model.pad_id)
        memory = model.encode(src, src_mask)
        expand = minigrad.tensor([b for b in range(batch) for _ in range(K)], device=src.device)  # (B*K,)
        stepper = _Stepper(model, memory[expand], src[expand], src_mask[expand], use_cache)
        prefixes = [[bos_id] for _ in range(batch * K)]                     # host copy of every beam's tokens
        scores = [0.0 if k == 0 else -math.inf for _ in range(batch) for k in range(K)]  # one live beam to start
        finished = [[] for _ in range(batch)]                              # Hypothesis lists
        done = [False] * batch
        for position in range(max_len):
            prefix = minigrad.tensor(prefixes, dtype=minigrad.int64, device=src.device)        # (B*K, t)
            log_probs = stepper.log_probs(prefix, position)                                   # (B*K, V)
            vocab = log_probs.shape[-1]
            total = (log_probs + minigrad.tensor(scores, dtype=log_probs.dtype, device=src.device).unsqueeze(1))
            total = total.reshape(batch, K * vocab)
            n_candidates = min(2 * K, K * vocab)
            order = total.xp.argsort(-total.data, axis=1)[:, :n_candidates]                   # best first
            best_ids = order.tolist()
            best_scores = total.xp.take_along_axis(total.data, order, axis=1).tolist()
            length = position + 1
            rows, tokens, new_scores = [], [], []
            for b in range(batch):
                survivors = []
                if not done[b]:
                    for rank, (score, flat) in enumerate(zip(best_scores[b], best_ids[b])):
                        if score == -math.inf or len(survivors) == K:
                            break
                        beam, token = divmod(flat, vocab)
                        if token == eos_id:
                            if rank < K:  # an EOS that makes the top K ends a hypothesis
                                finished[b].append(_hypothesis(prefixes[b * K + beam][1:], score, length, alpha))
                            continue
                        survivors.append((score, b * K + beam, token))
                    if not survivors or length == max_len:
                        finished[b] += [_hypothesis(prefixes[row][1:] + [t], s, length, alpha)
                                        for s, row, t in survivors]
                        done[b] = True
                    elif (len(finished[b]) >= wanted
                          and sorted((h.score for h in finished[b]), reverse=True)[wanted - 1]
                          >= survivors[0][0] / lp(max_len, alpha)):
                        done[b] = True  # no live beam can catch up with the N-th best, even at the best length
                if done[b]:
                    survivors = []
                survivors += [(-math.inf, b * K, model.pad_id)] * (K - len(survivors))   # idle rows keep shapes
                for score, row, token in survivors:
                    rows.append(row)
                    tokens.append(token)
                    new_scores.append(score)
            if all(done):
                break
            stepper.reorder(minigrad.tensor(rows, device=src.device))
            prefixes = [prefixes[row] + [token] for row, token in zip(rows, tokens)]
            scores = new_scores
    # sorted() is stable: among equal scores the earliest finished comes first, as max() would pick it
    ranked = [sorted(hypotheses, key=lambda h: h.score, reverse=True) for hypotheses in finished]
    if n_best is None:
        return [hypotheses[0].tokens if hypotheses else [] for hypotheses in ranked]
    return [hypotheses[:n_best] for hypotheses in ranked]
