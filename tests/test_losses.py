"""Training and validation losses (transformer/losses.py): padding never counts, the plain NLL is
the unsmoothed loss, and held-out averages are per target token whatever the batch size."""
import numpy as np
import pytest

import minigrad
import minigrad.functional as F
from transformer import Transformer
from transformer.data import Vocab
from transformer.losses import token_losses, validation_losses

PAD = 0


def test_padding_never_counts_and_nll_is_the_unsmoothed_loss():
    minigrad.manual_seed(0)
    logits = minigrad.randn(2, 3, 5)
    target = minigrad.tensor([[4, 1, PAD], [2, PAD, PAD]])
    loss, nll, correct = token_losses(logits, target, PAD, label_smoothing=0.1)
    flat, labels = logits.numpy().reshape(-1, 5), target.numpy().reshape(-1)
    log_probs = flat - np.log(np.exp(flat).sum(-1, keepdims=True))
    keep = labels != PAD
    assert nll.item() == pytest.approx(-log_probs[keep, labels[keep]].mean(), rel=1e-5)
    assert int(correct.item()) == int((flat.argmax(-1) == labels)[keep].sum())
    assert loss.item() > nll.item()                   # smoothing adds the spread-out part
    assert not nll.requires_grad and not correct.requires_grad
    plain, plain_nll, _ = token_losses(logits, target, PAD, label_smoothing=0.0)
    assert plain.item() == pytest.approx(plain_nll.item()) == pytest.approx(nll.item())
    assert plain.item() == pytest.approx(F.cross_entropy(logits.reshape(-1, 5), target.reshape(-1),
                                                         ignore_index=PAD).item())


def test_every_prediction_right_counts_every_real_token():
    target = minigrad.tensor([[4, 1, PAD]])
    logits = minigrad.tensor(np.eye(5, dtype=np.float32)[[4, 1, 3]][None] * 10)
    _, _, correct = token_losses(logits, target, PAD, label_smoothing=0.0)
    assert int(correct.item()) == 2


def test_validation_averages_per_token_whatever_the_batch_size():
    minigrad.manual_seed(1)
    vocab = Vocab(["a", "b", "c", "d"])
    model = Transformer(len(vocab), len(vocab), d_model=8, n_heads=2, d_ff=16, n_encoder_layers=1,
                        n_decoder_layers=1, max_len=16).train()
    sources = [[4, 5, 6], [7], [5, 5, 4, 7], [6, 4]]
    targets = [[5, 6], [4, 4, 7, 7], [6], [7, 5, 4]]
    whole = validation_losses(model, (sources, targets), vocab, 64, 0.1, "cpu")
    pairs = validation_losses(model, (sources, targets), vocab, 2, 0.1, "cpu")
    for key in ("loss", "nll", "token_accuracy"):
        assert pairs[key] == pytest.approx(whole[key], rel=1e-5)
    assert model.training                                 # back in training mode afterwards
    assert whole["loss"] > whole["nll"] > 0 and 0 <= whole["token_accuracy"] <= 1
