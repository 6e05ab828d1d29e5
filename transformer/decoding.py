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
"""
import math

import minigrad
import minigrad.functional as F

from .masks import padding_mask


def length_penalty(length, alpha):
    """GNMT length penalty ((5 + L) / 6) ** alpha."""
    return ((5.0 + length) / 6.0) ** alpha


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


def greedy_decode(model, src, max_len, bos_id, eos_id, use_cache=True):
    """src (B, S) ids -> B lists of at most `max_len` generated ids, picking the most likely token each step.

    Stops as soon as every sentence has produced its EOS (one host check per step).
    """
    with _inference(model):
        src_mask = padding_mask(src, model.pad_id)
        stepper = _Stepper(model, model.encode(src, src_mask), src, src_mask, use_cache)
        # Column 0 holds BOS, column p + 1 the token generated at step p; written in place.
        tokens = minigrad.full((src.shape[0], max_len + 1), bos_id, dtype=minigrad.int64, device=src.device)
        finished = minigrad.zeros(src.shape[0], dtype=minigrad.bool, device=src.device)
        length = 0
        for position in range(max_len):
            token = stepper.logits(tokens, position).argmax(-1)  # (B,): softmax keeps the order, so no softmax
            tokens[:, position + 1] = token
            length = position + 1
            finished = finished | (token == eos_id)
            if finished.all().item():
                break
    return [_strip(row[1:], eos_id) for row in tokens[:, :length + 1].tolist()]


def beam_search(model, src, beam_size=4, max_len=100, bos_id=2, eos_id=3, length_penalty=0.6, use_cache=True):
    """src (B, S) ids -> B lists of ids: the best finished hypothesis of a beam search per sentence.

    Every step each live beam is extended by every token; of the 2K best candidates of a
    sentence (K = beam_size), an EOS ranked among the first K ends a hypothesis (scored
    log P / lp(L)), and the K best others live on. A sentence stops only when no live beam
    can still beat its best finished hypothesis: log-probabilities only fall as a beam
    grows, but lp grows too, so the bound is score / lp(max_len), not the current rank --
    stopping at the first EOS would favour short outputs. At max_len, live beams are
    ranked with the finished ones. The default bos/eos ids are those of transformer.data.
    """
    alpha, K = length_penalty, beam_size
    lp = globals()["length_penalty"]
    batch = src.shape[0]
    with _inference(model):
        src_mask = padding_mask(src, model.pad_id)
        memory = model.encode(src, src_mask)
        expand = minigrad.tensor([b for b in range(batch) for _ in range(K)], device=src.device)  # (B*K,)
        stepper = _Stepper(model, memory[expand], src[expand], src_mask[expand], use_cache)
        prefixes = [[bos_id] for _ in range(batch * K)]                     # host copy of every beam's tokens
        scores = [0.0 if k == 0 else -math.inf for _ in range(batch) for k in range(K)]  # one live beam to start
        finished = [[] for _ in range(batch)]                              # (normalised score, tokens)
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
                                finished[b].append((score / lp(length, alpha), prefixes[b * K + beam][1:]))
                            continue
                        survivors.append((score, b * K + beam, token))
                    if not survivors or length == max_len:
                        finished[b] += [(s / lp(length, alpha), prefixes[row][1:] + [t]) for s, row, t in survivors]
                        done[b] = True
                    elif finished[b] and max(f[0] for f in finished[b]) >= survivors[0][0] / lp(max_len, alpha):
                        done[b] = True  # no live beam can catch up, even at the most favourable length
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
    return [max(hypotheses, key=lambda h: h[0])[1] if hypotheses else [] for hypotheses in finished]
