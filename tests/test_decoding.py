"""Greedy decoding and beam search: cache vs no cache, beam 1 vs greedy, length-normalised stopping, learning."""
import numpy as np
import pytest

import minigrad
import minigrad.functional as F
import nn
from transformer import Transformer, beam_search, greedy_decode

pytestmark = pytest.mark.usefixtures("both_paths")  # every test on the kernels and on the reference path

PAD, BOS, EOS = 0, 2, 3


def random_model(**options):
    minigrad.manual_seed(3)
    model = Transformer(12, 12, d_model=16, n_heads=4, d_ff=32, n_encoder_layers=2, n_decoder_layers=2,
                        max_len=24, **options)
    with minigrad.no_grad():  # sharper, more varied distributions than a fresh init gives
        model.generator.weight.mul_(6.0)
    return model


SOURCES = minigrad.tensor([[4, 5, 6, 7, 8, EOS], [9, 10, EOS, PAD, PAD, PAD], [11, 4, 4, 5, EOS, PAD]])


@pytest.mark.parametrize("norm_first", [False, True])
def test_cached_and_uncached_decoding_return_the_same_tokens(norm_first):
    model = random_model(norm_first=norm_first)
    greedy = greedy_decode(model, SOURCES, 12, BOS, EOS, use_cache=True)
    assert greedy == greedy_decode(model, SOURCES, 12, BOS, EOS, use_cache=False)
    assert len({tuple(row) for row in greedy}) > 1  # not a degenerate model
    beams = beam_search(model, SOURCES, 3, 12, BOS, EOS, length_penalty=0.6, use_cache=True)
    assert beams == beam_search(model, SOURCES, 3, 12, BOS, EOS, length_penalty=0.6, use_cache=False)


def test_cached_step_logits_equal_full_decoder_logits():
    """Position offsets and cached keys/values: step t of the cache equals position t of a full decode."""
    model = random_model().eval()
    tgt = minigrad.tensor([[BOS, 5, 6, 7], [BOS, 9, 4, 10], [BOS, 11, 11, 4]])
    with minigrad.no_grad():
        memory = model.encode(SOURCES)
        full = model.decode(tgt, memory, SOURCES).numpy()
        cache = model.new_cache()
        from transformer.masks import padding_mask
        for position in range(4):
            step = model.decode_step(tgt[:, position], memory, padding_mask(SOURCES, PAD), cache, position).numpy()
            np.testing.assert_allclose(step, full[:, position], rtol=1e-5, atol=1e-5)


def test_beam_of_one_is_greedy():
    model = random_model()
    for use_cache in (True, False):
        assert (beam_search(model, SOURCES, 1, 12, BOS, EOS, length_penalty=0.0, use_cache=use_cache)
                == greedy_decode(model, SOURCES, 12, BOS, EOS))


def test_decoding_restores_the_mode_and_records_no_graph():
    model = random_model(dropout=0.5)
    model.train()
    first = greedy_decode(model, SOURCES, 8, BOS, EOS)
    assert model.training and all(m.training for m in model.modules())
    assert first == greedy_decode(model, SOURCES, 8, BOS, EOS)  # eval inside: no dropout noise
    model.eval()
    beam_search(model, SOURCES, 2, 8, BOS, EOS)
    assert not model.training


def test_outputs_stop_at_eos_and_respect_max_len():
    model = random_model()
    for row in greedy_decode(model, SOURCES, 5, BOS, EOS) + beam_search(model, SOURCES, 3, 5, BOS, EOS):
        assert len(row) <= 5 and EOS not in row and PAD not in row


class ScriptedModel(nn.Module):
    """A stand-in decoder whose next-token probabilities depend only on the last token (a fixed table)."""

    pad_id = PAD

    def __init__(self, table):
        super().__init__()
        self.log_table = minigrad.tensor(np.log(np.asarray(table, dtype=np.float64)))
        self.generator = nn.Identity()  # the "hidden state" below already is the next-token score

    def encode(self, src, src_mask=None):
        return minigrad.zeros(src.shape[0], src.shape[1], 1, dtype=minigrad.float64)

    def new_cache(self):
        return []

    @staticmethod
    def reorder_cache(cache, index):
        pass

    def decode_step(self, tokens, memory, src_mask, cache, position):
        return self.log_table[tokens]

    def decode_hidden(self, prefix, memory, src, src_mask=None):
        return self.log_table[prefix]


def scripted_model():
    # tokens: 0 pad, 1 unused, 2 BOS, 3 EOS, 4 "a", 5 "b"
    table = np.full((6, 6), 1e-6)
    table[BOS] = [1e-6, 1e-6, 1e-6, 0.50, 0.49, 0.01]    # EOS right away is the single most likely step...
    table[4] = [1e-6, 1e-6, 1e-6, 0.999, 1e-4, 1e-4]     # ... but "a EOS" is almost as likely, and longer
    table[5] = [1e-6, 1e-6, 1e-6, 0.5, 0.25, 0.25]
    table[EOS] = [1e-6, 1e-6, 1e-6, 0.2, 0.4, 0.4]
    return ScriptedModel(table / table.sum(1, keepdims=True))


@pytest.mark.parametrize("use_cache", [True, False])
def test_beam_search_does_not_stop_at_the_first_eos_when_length_normalisation_prefers_longer(use_cache):
    model, src = scripted_model(), minigrad.tensor([[4, EOS]])
    # Plain log-probability: [] (p=0.50) beats [a] (p=0.49*0.999).
    assert beam_search(model, src, 2, 6, BOS, EOS, length_penalty=0.0, use_cache=use_cache) == [[]]
    # GNMT penalty, alpha=1: log(0.50)/1 = -0.693 < log(0.4895)/(7/6) = -0.613, so [a] must win although
    # the top-ranked hypothesis ended first.
    assert beam_search(model, src, 2, 6, BOS, EOS, length_penalty=1.0, use_cache=use_cache) == [[4]]
    assert greedy_decode(model, src, 6, BOS, EOS, use_cache=use_cache) == [[]]


# -- it learns ---------------------------------------------------------------------------------
def reverse_batch(rng, n, symbols=range(4, 14), lengths=(3, 7)):
    """src = x + EOS (padded), tgt = BOS + reversed(x) + EOS (padded)."""
    rows = [list(rng.choice(list(symbols), size=rng.integers(*lengths, endpoint=True))) for _ in range(n)]
    width = lengths[1] + 2
    src = np.full((n, width - 1), PAD)
    tgt = np.full((n, width), PAD)
    for i, row in enumerate(rows):
        src[i, :len(row) + 1] = row + [EOS]
        tgt[i, :len(row) + 2] = [BOS] + row[::-1] + [EOS]
    return rows, minigrad.tensor(src), minigrad.tensor(tgt)


@pytest.mark.slow
def test_a_small_model_learns_to_reverse_held_out_sequences():
    minigrad.manual_seed(0)
    rng = np.random.default_rng(0)
    model = Transformer(14, 14, d_model=32, n_heads=4, d_ff=64, n_encoder_layers=2, n_decoder_layers=2, dropout=0.0,
                        max_len=16)
    optimizer = minigrad.optim.Adam(model.parameters(), lr=3e-3, betas=(0.9, 0.98), eps=1e-9)
    model.train()
    steps = 600  # 400 sufficed, narrowly: the margin keeps the test from hanging on rounding details
    for step in range(1, steps + 1):
        for group in optimizer.param_groups:  # 30 steps of warmup, then linear decay to 0
            group["lr"] = 3e-3 * min(1.0, step / 30) * (1 - step / (steps + 1))
        _, src, tgt = reverse_batch(rng, 64)
        logits = model(src, tgt[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, 14), tgt[:, 1:].reshape(-1), ignore_index=PAD)
        model.zero_grad()
        loss.backward()
        optimizer.step()
    rows, src, _ = reverse_batch(np.random.default_rng(12345), 100)
    expected = [[int(t) for t in row[::-1]] for row in rows]
    assert greedy_decode(model, src, 10, BOS, EOS) == expected
    assert beam_search(model, src, 3, 10, BOS, EOS) == expected
