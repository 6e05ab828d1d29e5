"""BLEU and chrF (transformer/metrics.py) mean the same with and without sacrebleu: the built-in
scores are checked by hand here, and, when sacrebleu is installed, against it on many random and
edge-case corpora, for equality to the last bit."""
import math
import random

import pytest

from transformer import metrics

EDGE_CASES = [  # (hypotheses, references)
    (["the cat sat on the mat"], ["the cat sat on the mat"]),
    (["the cat sat on the mat"], ["the cat sat on a mat"]),
    ([""], ["something"]),
    (["something"], [""]),
    (["", ""], ["", ""]),
    (["a"], ["a"]),                                              # no 2-grams at all
    (["a b", "c"], ["a b", "c"]),                                # every hypothesis shorter than 4
    (["abcdefg", "hijk"], ["abcdefg", "hijx"]),                  # one "word" a sentence
    (["x y z w"], ["a b c d"]),                                  # nothing matches
    (["a b c d e"], ["a b x d e"]),                              # 3- and 4-grams all wrong: smoothing
    (["He said: \"hi,\" then (quietly) left."], ["He said \"hi\" then left..."]),
    (["3.5 is 1,000 - 2 or 1990-2000, .5 and 5."], ["3.5 is 1,000-2 or 1990 - 2000 , .5 and 5 ."]),
    (["Tom &amp; Ann &lt;3 &quot;x&quot;"], ["Tom & Ann <3 \"x\""]),
    (["line one-\nline two\n"], ["line oneline two"]),
    (["a <skipped> b"], ["a b"]),
    (["  leading and trailing  ", "tab\tseparated\twords"], ["leading and trailing", "tab separated words"]),
    (["no\u00a0break\u2003em\x1cfile sep"], ["no break em file sep"]),   # Unicode whitespace
    (["¿Dónde está el baño?", "café crème", "cafe\u0301 cre\u0300me"], ["¿Dónde está el baño?", "café creme", "café crème"]),
    (["안녕하세요, 세계!", "我喜欢猫。"], ["안녕하세요 세계!", "我喜欢狗。"]),
    (["I ❤️ 🐈‍⬛ and 😀!"], ["I ❤️ 🐈 and 😀 !"]),
    (["a " * 60], ["a " * 59 + "b"]),
]

_PIECES = (list("abcxyz ABC.,-'\"&;:!?()/<>[]{}0123456789 éñ한글😀\t\n\u00a0\u0301")
           + ["&amp;", "&quot;", "&lt;", "<skipped>", "-\n", "  ", "the ", "cat ", "ab", "1.5", "3,000"])


def random_corpus(rnd):
    def sentence():
        return "".join(rnd.choice(_PIECES) for _ in range(rnd.randint(0, 25)))
    hyps = [sentence() for _ in range(rnd.randint(1, 5))]
    refs = [h if rnd.random() < 0.3 else sentence() for h in hyps]
    return hyps, refs


# -- by hand, with or without sacrebleu ----------------------------------------------------------

def test_13a_cuts_off_punctuation_but_keeps_numbers_and_inner_marks_whole():
    assert metrics.tokenize_13a('He said: "hi," then (quietly) left.') == \
        ["He", "said", ":", '"', "hi", ",", '"', "then", "(", "quietly", ")", "left", "."]
    assert metrics.tokenize_13a("3.5 and 1,000 in 1990-2000, don't self-made") == \
        ["3.5", "and", "1,000", "in", "1990", "-", "2000", ",", "don't", "self-made"]
    assert metrics.tokenize_13a(".5 and 5.") == [".", "5", "and", "5", "."]   # the padding space at work
    assert metrics.tokenize_13a("a &amp; b &lt;c&gt; <skipped>") == ["a", "&", "b", "<", "c", ">"]
    assert metrics.tokenize_13a("well-\nknown\nfact-\n") == ["wellknown", "fact-"]
    assert metrics.tokenize_13a("¿Qué? ¡Sí!") == ["¿Qué", "?", "¡Sí", "!"]      # only ASCII marks are cut


def test_char_tokenisation_drops_every_kind_of_whitespace():
    assert metrics.tokenize_char("ab c\td\u00a0e\u2003f\x1cg\n") == list("abcdefg")
    assert metrics.bleu_tokenization("char") == "char"
    assert metrics.bleu_tokenization("word") == metrics.bleu_tokenization("bpe") == "13a"


def test_exp_smoothing_and_the_orders_that_are_missing():
    hyp, ref = "a b c d e".split(), "a b x d e".split()
    # matches 4/5, 2/4, 0/3, 0/2: the empty orders get 1/(2*3) and 1/(4*2)
    expected = math.exp(sum(math.log(p) for p in (100 * 4 / 5, 100 * 2 / 4, 100 / 6, 100 / 8)) / 4)
    assert metrics.corpus_bleu([hyp], [ref]) == pytest.approx(expected, rel=1e-12)
    assert metrics.corpus_bleu([hyp], [ref], smooth="none") == 0.0
    # No hypothesis has four tokens: no 4-gram candidates, so BLEU is 0 unless effective order.
    short = [["a", "b", "c"], ["d"]]
    assert metrics.corpus_bleu(short, short) == 0.0
    assert metrics.corpus_bleu(short, short, effective_order=True) == pytest.approx(100.0)
    assert metrics.corpus_bleu([[]], [["a"]]) == 0.0
    with pytest.raises(ValueError, match="smoothing"):
        metrics.corpus_bleu(short, short, smooth="floor")


def test_chrf_by_hand():
    # "ab" against "abc": 1-grams P 2/2, R 2/3; 2-grams P 1/1, R 1/2; the hypothesis has no
    # 3-gram and the reference none longer, so those orders are left out of the averages.
    precision, recall = 1.0, (2 / 3 + 1 / 2) / 2
    expected = 100 * 5 * precision * recall / (4 * precision + recall)
    assert metrics.chrf(["ab"], ["abc"]) == pytest.approx(expected)
    assert metrics.chrf(["a b"], ["ab"]) == pytest.approx(100.0)           # whitespace is ignored
    assert metrics.chrf(["xyz"], ["abc"]) == 0.0 and metrics.chrf([""], [""]) == 0.0


def test_the_built_in_scores_name_their_tokenisation():
    hyps, refs = ["the cat sat", "a dog"], ["the cat sat", "the dog"]
    scores = metrics.translation_scores([h.split() for h in hyps], [r.split() for r in refs], hyps, refs,
                                        tokenize="char", use_sacrebleu=False)
    assert scores["bleu_tokenize"] == "char" and scores["bleu_source"] == "built-in"
    assert scores["bleu"] == metrics.bleu(hyps, refs, tokenize="char")
    assert scores["chrf"] == metrics.chrf(hyps, refs)
    assert scores["exact_match"] == 0.5 and scores["sentences"] == 2
    empty = metrics.translation_scores([], [])
    assert empty["bleu"] == empty["chrf"] == 0.0
    with pytest.raises(ValueError, match="tokenisation"):
        metrics.translation_scores([], [], tokenize="intl")


# -- against sacrebleu ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sacrebleu():
    return pytest.importorskip("sacrebleu")


@pytest.mark.parametrize("hyps,refs", EDGE_CASES)
def test_edge_cases_score_exactly_as_sacrebleu(sacrebleu, hyps, refs):
    for tokenize in ("13a", "char"):
        assert metrics.bleu(hyps, refs, tokenize) == sacrebleu.corpus_bleu(hyps, [refs], tokenize=tokenize).score
    assert metrics.chrf(hyps, refs) == sacrebleu.corpus_chrf(hyps, [refs]).score


def test_random_corpora_score_exactly_as_sacrebleu(sacrebleu):
    rnd = random.Random(15)
    settings = [(smooth, effective) for smooth in ("exp", "none") for effective in (False, True)]
    for _ in range(250):
        hyps, refs = random_corpus(rnd)
        for tokenize in ("13a", "char"):
            split = metrics.BLEU_TOKENIZERS[tokenize]
            for smooth, effective in settings:
                theirs = sacrebleu.BLEU(tokenize=tokenize, smooth_method=smooth,
                                        effective_order=effective).corpus_score(hyps, [refs]).score
                ours = metrics.corpus_bleu([split(h) for h in hyps], [split(r) for r in refs],
                                           smooth=smooth, effective_order=effective)
                assert ours == theirs, (hyps, refs, tokenize, smooth, effective)
        assert metrics.chrf(hyps, refs) == sacrebleu.corpus_chrf(hyps, [refs]).score, (hyps, refs)


def test_13a_tokens_are_sacrebleus(sacrebleu):
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a
    theirs = Tokenizer13a()
    rnd = random.Random(13)
    lines = [line for hyps, refs in EDGE_CASES for line in hyps + refs]
    lines += [line for _ in range(300) for line in random_corpus(rnd)[0]]
    for line in lines:
        assert metrics.tokenize_13a(line) == theirs(line.rstrip()).split(), line


def test_a_character_level_run_scores_the_same_with_and_without_sacrebleu(sacrebleu):
    """The bug of issue 15: BLEU of a character-level run went from 83.3 to 0.0 with sacrebleu."""
    hyps = ["olleh", "dlrow", "nohtyp", "rabmiroc"]
    refs = ["olleh", "dlrow", "nohtyq", "rabmirox"]
    tokens = [list(h) for h in hyps], [list(r) for r in refs]
    with_it = metrics.translation_scores(*tokens, hyps, refs, tokenize="char")
    without = metrics.translation_scores(*tokens, hyps, refs, tokenize="char", use_sacrebleu=False)
    assert with_it.pop("bleu_source") == "sacrebleu" and without.pop("bleu_source") == "built-in"
    assert with_it == without and with_it["bleu"] > 50
    assert sacrebleu.corpus_bleu(hyps, [refs]).score == 0.0        # what 13a made of it
