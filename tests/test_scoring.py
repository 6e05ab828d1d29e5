"""Decoding and scoring (transformer/scoring.py): outputs come back in input order whatever the
decoding batches, and the scores are those of the decoded text against the references."""
import pytest

import minigrad
from transformer import Transformer, metrics
from transformer.data import Vocab, detokenize
from transformer.scoring import format_scores, print_examples, score_pairs, translate_ids

WORDS = ["a", "b", "c", "d", "e", "f", "g", "h"]
VOCAB = Vocab(WORDS)
# Lengths 3 and 5 in turn: sorted by length, batches of 3 hold sentences of one length, so each is
# decoded with the same length cap (2 * source length + 10) as when decoded alone.
SOURCES = ["a b c", "d e f g h", "g h a", "b b c d e", "c d e", "f g h a b"]


@pytest.fixture(scope="module")
def model():
    minigrad.manual_seed(3)
    model = Transformer(len(VOCAB), len(VOCAB), d_model=16, n_heads=4, d_ff=32, n_encoder_layers=1,
                        n_decoder_layers=1, max_len=24)
    with minigrad.no_grad():  # sharper, more varied outputs than a fresh init gives
        model.generator.weight.mul_(6.0)
    return model.eval()


def source_ids(sentences):
    return [VOCAB.encode(s.split()) for s in sentences]


def test_outputs_come_back_in_input_order_whatever_the_batches(model):
    sources = source_ids(SOURCES)
    one_by_one = [translate_ids(model, [ids], VOCAB, "cpu")[0] for ids in sources]
    assert len({tuple(o) for o in one_by_one}) > 1              # not a degenerate model
    for batch_size in (1, 3):
        assert translate_ids(model, sources, VOCAB, "cpu", batch_size=batch_size) == one_by_one
    together = translate_ids(model, sources, VOCAB, "cpu")    # one batch: the longest source sets the cap
    assert all(a[:len(b)] == b or b[:len(a)] == a for a, b in zip(together, one_by_one))
    assert all(VOCAB.eos_id not in ids for ids in one_by_one)                   # cut at <eos>
    assert all(len(ids) <= 2 * len(src) + 10 for ids, src in zip(one_by_one, sources))
    assert translate_ids(model, sources, VOCAB, "cpu", beam=1, batch_size=3) == one_by_one    # beam 1: greedy
    beams = translate_ids(model, sources, VOCAB, "cpu", beam=3, batch_size=3)
    assert beams == [translate_ids(model, [ids], VOCAB, "cpu", beam=3)[0] for ids in sources]


def test_scores_are_those_of_the_decoded_text(model):
    outputs = translate_ids(model, source_ids(SOURCES), VOCAB, "cpu", batch_size=3)
    texts = [detokenize(VOCAB.decode(ids)) for ids in outputs]
    own = list(zip(SOURCES, texts))                            # references = what the model says
    scores, hypotheses = score_pairs(model, own, VOCAB, VOCAB, "word", "cpu", batch_size=3)
    assert hypotheses == texts
    assert scores["exact_match"] == 1.0 and scores["sentences"] == len(SOURCES)
    wrong = [(s, t + " zzz") if i % 2 else (s, t) for i, (s, t) in enumerate(own)]
    scores, _ = score_pairs(model, wrong, VOCAB, VOCAB, "word", "cpu", batch_size=3)
    assert scores["exact_match"] == pytest.approx(0.5)


def test_format_scores_with_and_without_chrf():
    scores = {"exact_match": 0.5, "token_accuracy": 0.25, "bleu": 12.345, "sentences": 8}
    plain = format_scores(scores)
    assert plain.startswith("exact match 50.0%  token accuracy 25.0%  BLEU 12.3")
    assert "chrF" not in plain and plain.endswith("on 8 sentences")
    full = format_scores({**scores, "chrf": 40.06, "bleu_tokenize": "char"})
    assert "BLEU 12.3 (tokenize char)  chrF 40.1  on 8" in full


def test_character_runs_are_scored_with_character_bleu(model):
    """The bug of issue 15: a character-level run's sentences are one "word" each, and 13a BLEU
    of them is 0 however good they are; character BLEU counts what the run got right."""
    _, texts = score_pairs(model, [(s, "x") for s in SOURCES], VOCAB, VOCAB, "char", "cpu", batch_size=3)
    assert max(len(t) for t in texts) >= 4 and not any(" " in t for t in texts)
    scores, again = score_pairs(model, list(zip(SOURCES, texts)), VOCAB, VOCAB, "char", "cpu", batch_size=3)
    assert again == texts and scores["exact_match"] == 1.0
    assert scores["bleu_tokenize"] == "char" and scores["bleu"] == pytest.approx(100.0)
    assert metrics.bleu(texts, texts, tokenize="13a") == 0.0


def test_print_examples_marks_each_translation(capsys):
    pairs = [("a b", "x y"), ("c", "z"), ("d", "w")]
    print_examples(pairs, ["x y", "q", "w"], 2, "word")
    out = capsys.readouterr().out
    assert out.count("source:") == 2 and "d" not in out.split("source:")[-1].split("\n")[0]
    assert "model:      x y   [ok]" in out and "model:      q   [WRONG]" in out
