"""The training loss of a batch, and the same numbers on held-out pairs, teacher-forced.

Both report the label-smoothed loss (what training minimises), the plain NLL and the count of
correctly predicted tokens: the smoothed loss cannot fall below the entropy of the smoothed target
distribution, so the NLL and the accuracy are what show progress.
"""
from __future__ import annotations

import minigrad
from minigrad import functional as F

from .batching import batch_tensors
from .data import Vocab, make_batches


def token_losses(logits, tgt_out, pad_id: int, label_smoothing: float):
    """(label-smoothed loss to train on, plain NLL, correctly predicted tokens), all per the batch's tokens.

    The NLL and the count need no gradient.
    """
    flat_logits = logits.reshape(-1, logits.shape[-1])
    flat_target = tgt_out.reshape(-1)
    loss = F.cross_entropy(flat_logits, flat_target, ignore_index=pad_id, label_smoothing=label_smoothing)
    with minigrad.no_grad():
        detached = flat_logits.detach()
        nll = F.cross_entropy(detached, flat_target, ignore_index=pad_id) if label_smoothing else loss.detach()
        correct = ((detached.argmax(-1) == flat_target) & (flat_target != pad_id)).sum()
    return loss, nll, correct


def validation_losses(model, pairs_ids: tuple[list, list], tgt_vocab: Vocab, batch_size: int,
                      label_smoothing: float, device) -> dict:
    """Teacher-forced loss, NLL and token accuracy on held-out (source ids, target ids), averaged per
    target token (no decoding, so it is cheap)."""
    src_ids, tgt_ids = pairs_ids
    batches = make_batches(src_ids, tgt_ids, batch_size, tgt_vocab.pad_id, tgt_vocab.bos_id,
                           tgt_vocab.eos_id, shuffle=False)
    totals = {"loss": 0.0, "nll": 0.0, "correct": 0, "tokens": 0}
    model.eval()
    with minigrad.no_grad():
        for batch in batches:
            src, tgt_in, tgt_out = batch_tensors(batch, device)
            loss, nll, correct = token_losses(model(src, tgt_in), tgt_out, model.pad_id, label_smoothing)
            totals["loss"] += loss.item() * batch.n_tokens
            totals["nll"] += nll.item() * batch.n_tokens
            totals["correct"] += int(correct.item())
            totals["tokens"] += batch.n_tokens
    model.train()
    tokens = max(totals["tokens"], 1)
    return {"loss": totals["loss"] / tokens, "nll": totals["nll"] / tokens, "token_accuracy": totals["correct"] / tokens}
