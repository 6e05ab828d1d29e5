"""N-best beam search and decoding scores: lists ranked by score, the top one today's output, every
log-probability the model's own (recomputed by teacher forcing), beam 1 = greedy, cache = no cache."""
import math

import numpy as np
import pytest

import minigrad
import minigrad.functional as F
from transformer import Hypothesis, beam_search, greedy_decode
from transformer.decoding import length_penalty

from test_decoding import BOS, EOS, PAD, SOURCES, random_model, scripted_model

pytestmark = pytest.mark.usefixtures("both_paths")  # every test on the kernels and on the reference path

BUDGET = 12


def teacher_forced_log_prob(model, src_row, tokens, max_len):
    """log P(tokens [+ EOS]) from one forward pass over the whole hypothesis: log_softmax (padding blocked,
    as decoding sees it) and the target's entry gathered at every position."""
    target = tokens + [EOS] if len(tokens) < max_len else tokens  # a hypothesis filling the budget has no EOS
    tgt_in = ([BOS] + target)[:-1]
    model.eval()
    with minigrad.no_grad():
        logits = model(src_row.unsqueeze(0), minigrad.tensor([tgt_in]))
        logits[:, :, PAD] = -math.inf
        picked = F.log_softmax(logits, -1).gather(-1, minigrad.tensor([target]).unsqueeze(-1))
    return picked.sum().item()


def assert_scores_are_the_models(model, hypotheses, alpha, max_len, tol):
    for row, sentence in enumerate(hypotheses):
        for h in sentence:
            assert isinstance(h, Hypothesis)
            expected = teacher_forced_log_prob(model, SOURCES[row], h.tokens, max_len)
            assert h.log_prob == pytest.approx(expected, rel=tol, abs=tol)
            length = len(h.tokens) + (len(h.tokens) < max_len)  # the EOS counts
            assert h.score == pytest.approx(h.log_prob / length_penalty(length, alpha), rel=1e-12)


@pytest.mark.parametrize("dtype,tol", [("float32", 1e-4), ("float64", 1e-9)])
@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_n_best_lists_are_ranked_their_top_is_todays_output_and_their_scores_the_models(dtype, tol, alpha):
    model = random_model().to(dtype=np.dtype(dtype))
    today = beam_search(model, SOURCES, 4, BUDGET, BOS, EOS, length_penalty=alpha)
    for n in (1, 2, 4):
        nbest = beam_search(model, SOURCES, 4, BUDGET, BOS, EOS, length_penalty=alpha, n_best=n)
        assert [sentence[0].tokens for sentence in nbest] == today
        for sentence in nbest:
            assert len(sentence) == n
            assert [h.score for h in sentence] == sorted((h.score for h in sentence), reverse=True)
            assert len({tuple(h.tokens) for h in sentence}) == n  # n different hypotheses
            assert all(EOS not in h.tokens and PAD not in h.tokens and len(h.tokens) <= BUDGET for h in sentence)
        assert_scores_are_the_models(model, nbest, alpha, BUDGET, tol)


def test_the_n_best_of_a_wider_search_are_a_prefix_of_a_longer_list():
    """Asking for more hypotheses only lengthens the list: the search runs on until none of the N can be displaced."""
    model = random_model()
    three = beam_search(model, SOURCES, 4, BUDGET, BOS, EOS, n_best=3)
    four = beam_search(model, SOURCES, 4, BUDGET, BOS, EOS, n_best=4)
    assert [[h.tokens for h in s] for s in three] == [[h.tokens for h in s[:3]] for s in four]


def test_greedy_scores_are_the_models_and_beam_of_one_is_greedy():
    model = random_model()
    assert_scores_are_the_models(model, [[h] for h in greedy_decode(model, SOURCES, BUDGET, BOS, EOS,
                                                                    return_scores=True, length_penalty=0.6)],
                                 0.6, BUDGET, 1e-4)
    greedy = greedy_decode(model, SOURCES, BUDGET, BOS, EOS, return_scores=True)
    assert [h.tokens for h in greedy] == greedy_decode(model, SOURCES, BUDGET, BOS, EOS)
    assert all(h.score == h.log_prob for h in greedy)  # alpha 0: the score is the log-probability
    for use_cache in (True, False):
        beam = beam_search(model, SOURCES, 1, BUDGET, BOS, EOS, length_penalty=0.0, use_cache=use_cache, n_best=1)
        assert [s[0].tokens for s in beam] == [h.tokens for h in greedy]
        np.testing.assert_allclose([s[0].log_prob for s in beam], [h.log_prob for h in greedy], rtol=1e-5, atol=1e-5)


def test_greedy_scores_of_a_sentence_cut_at_the_budget_cover_its_tokens_only():
    model = random_model()
    cut = greedy_decode(model, SOURCES, 4, BOS, -1, return_scores=True)  # no EOS ever: every row fills the budget
    assert all(len(h.tokens) == 4 for h in cut)
    assert_scores_are_the_models(model, [[h] for h in cut], 0.0, 4, 1e-4)


@pytest.mark.parametrize("norm_first", [False, True])
def test_cached_and_uncached_n_best_agree(norm_first):
    model = random_model(norm_first=norm_first)
    cached = beam_search(model, SOURCES, 3, BUDGET, BOS, EOS, n_best=3, use_cache=True)
    uncached = beam_search(model, SOURCES, 3, BUDGET, BOS, EOS, n_best=3, use_cache=False)
    assert [[h.tokens for h in s] for s in cached] == [[h.tokens for h in s] for s in uncached]
    np.testing.assert_allclose([[h.score for h in s] for s in cached], [[h.score for h in s] for s in uncached],
                               rtol=1e-5, atol=1e-5)
    greedy = greedy_decode(model, SOURCES, BUDGET, BOS, EOS, return_scores=True, use_cache=True)
    again = greedy_decode(model, SOURCES, BUDGET, BOS, EOS, return_scores=True, use_cache=False)
    assert [h.tokens for h in greedy] == [h.tokens for h in again]
    np.testing.assert_allclose([h.log_prob for h in greedy], [h.log_prob for h in again], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("use_cache", [True, False])
def test_n_best_of_the_scripted_model_by_hand(use_cache):
    """The table of test_decoding: [] has p(EOS | BOS), [a] has p(a | BOS) p(EOS | a), padding blocked."""
    model, src = scripted_model(), minigrad.tensor([[4, EOS]])
    log_table = model.log_table.numpy()
    table = log_table - np.log1p(-np.exp(log_table[:, [PAD]]))  # renormalised without the padding entry
    empty, a = table[BOS, EOS], table[BOS, 4] + table[4, EOS]
    (best, second), = beam_search(model, src, 2, 6, BOS, EOS, length_penalty=1.0, use_cache=use_cache, n_best=2)
    assert best.tokens == [4] and second.tokens == []
    assert best.log_prob == pytest.approx(a, rel=1e-9) and second.log_prob == pytest.approx(empty, rel=1e-9)
    assert best.score == pytest.approx(a / (7 / 6)) and second.score == pytest.approx(empty / 1.0)
    (first, other), = beam_search(model, src, 2, 6, BOS, EOS, length_penalty=0.0, use_cache=use_cache, n_best=2)
    assert (first.tokens, other.tokens) == ([], [4]) and first.score == first.log_prob


def test_n_best_must_fit_the_beam():
    model = random_model()
    for n_best in (0, 4):
        with pytest.raises(ValueError, match="n_best must be between 1 and beam_size=3"):
            beam_search(model, SOURCES, 3, BUDGET, BOS, EOS, n_best=n_best)


def test_a_source_longer_than_max_len_is_one_clear_error():
    model = random_model()  # max_len=24
    long_row = [4 + i % 8 for i in range(29)] + [EOS]
    src = minigrad.tensor([long_row, [5, 6, EOS] + [PAD] * 27])
    for decode in (lambda: greedy_decode(model, src, BUDGET, BOS, EOS),
                   lambda: beam_search(model, src, 2, BUDGET, BOS, EOS, n_best=2)):
        with pytest.raises(ValueError, match=r"source sentence 0 of the batch has 30 tokens, more than the "
                                             r"model's max_len=24"):
            decode()


def test_padding_beyond_max_len_is_dropped_and_the_budget_capped():
    model = random_model()  # max_len=24
    padded = minigrad.cat([SOURCES, minigrad.full((3, 26), PAD, dtype=minigrad.int64)], dim=1)  # 32 columns
    assert greedy_decode(model, padded, BUDGET, BOS, EOS) == greedy_decode(model, SOURCES, BUDGET, BOS, EOS)
    assert beam_search(model, padded, 3, BUDGET, BOS, EOS) == beam_search(model, SOURCES, 3, BUDGET, BOS, EOS)
    # A budget beyond the decoder's positions stops at them instead of failing mid-way.
    assert all(len(row) == 24 for row in greedy_decode(model, SOURCES, 40, BOS, -1))
    assert greedy_decode(model, SOURCES, 40, BOS, EOS) == greedy_decode(model, SOURCES, 24, BOS, EOS)


def test_translate_ids_gives_the_n_best_in_input_order():
    from transformer.data import Vocab
    from transformer.scoring import translate_ids
    model, vocab = random_model(), Vocab([])  # translate_ids needs only its bos/eos ids
    sources = [[4, 5, 6, 7, 8], [9, 10], [11, 4, 4, 5], [6, 7]]
    for beam, n_best in ((3, 3), (3, 1), (None, 1)):
        nbest = translate_ids(model, sources, vocab, "cpu", beam=beam, batch_size=2, n_best=n_best)
        assert [[h.tokens for h in sentence][:1] for sentence in nbest] == [
            [ids] for ids in translate_ids(model, sources, vocab, "cpu", beam=beam, batch_size=2)]
        assert all(len(sentence) == n_best for sentence in nbest)
    with pytest.raises(ValueError, match="n_best=2 needs a beam of at least 2"):
        translate_ids(model, sources, vocab, "cpu", n_best=2)
