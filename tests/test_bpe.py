"""Byte-pair encoding (transformer/bpe.py): every training sentence comes back exactly, the fast
incremental learner finds the very merges of the slow textbook one, encoding replays learning,
and a tokenizer travels through JSON and checkpoints."""
import json
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigrad
from transformer import metrics
from transformer.bpe import BPE, N_SPECIAL, learn_for_pairs, readable, split_words
from transformer.data import SPECIALS, Vocab

HARD = [
    "Hello, world!",
    "  two leading spaces, two trailing  ",
    "runs   of    spaces\tand\ttabs \t mixed\nand a newline\r\n",
    " ",
    "",
    "¿Dónde está el baño? ¡Aquí!",
    "precomposed café crème naïve",
    "combining cafe\u0301 cre\u0300me nai\u0308ve",
    "한국어 문장입니다. 안녕하세요!",
    "decomposed jamo \u1112\u1161\u11ab\u1100\u1173\u11af",
    "emoji 😀 👍🏽 ❤️ 🐈‍⬛ 👨‍👩‍👧 flags 🇫🇷!",
    "a literal \u2581 and <unk> and <pad> in the text",
    "no\u00a0break, em\u2003space, zero\u200bwidth",
    "我喜欢猫。你呢？",
    "مرحبا بالعالم",
    "don't stop—it's 3.14 or 1,000 (maybe) [yes] {no} \"quoted\" 'single' … «guillemets»",
    "UPPER lower MiXeD 12345 under_score hy-phen",
]


def textbook_merges(sentences, vocab_size, min_frequency=2):
    """BPE as first described: count every pair again after every merge. Slow, plainly right."""
    counts = Counter(word for s in sentences for word in split_words(s))
    segmented = {word: list(word) for word in counts}
    room = vocab_size - N_SPECIAL - len(set("".join(counts)))
    merges, new_symbols = [], set()
    while len(new_symbols) < room:
        pairs = Counter()
        for word, n in counts.items():
            for pair in zip(segmented[word], segmented[word][1:]):
                pairs[pair] += n
        if not pairs:
            break
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        if pairs[best] < min_frequency:
            break
        merges.append(best)
        new_symbols.add(best[0] + best[1])
        for word, symbols in segmented.items():
            out, i = [], 0
            while i < len(symbols):
                if tuple(symbols[i:i + 2]) == best:
                    out.append(best[0] + best[1])
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            segmented[word] = out
    return merges


def random_sentences(rnd, n, letters="aab"):
    """Sentences over few letters, so that runs like "aaaa" and "abab" are common."""
    return [" ".join("".join(rnd.choice(letters) for _ in range(rnd.randint(1, 7)))
                     for _ in range(rnd.randint(1, 5))) for _ in range(n)]


@pytest.fixture(scope="module")
def hard_bpe():
    return BPE.learn(HARD * 3, vocab_size=300)


# -- words and exact round trips -----------------------------------------------------------------

def test_words_split_off_punctuation_and_keep_whitespace_and_marks():
    assert split_words("Hola, ¿qué tal?") == ["Hola", ",", " ¿", "qué", " tal", "?"]
    assert split_words("  a\tb  ") == ["  a", "\tb", "  "]
    assert split_words("cafe\u0301!") == ["cafe\u0301", "!"]          # the accent stays on its letter
    assert split_words("❤️🐈‍⬛ ok") == ["❤️🐈‍⬛", " ok"]                  # selector and joiner stay too
    for text in HARD:
        assert "".join(split_words(text)) == text


def test_every_training_sentence_round_trips_without_unk(hard_bpe):
    vocab = Vocab(hard_bpe.symbols())
    for text in HARD:
        pieces = hard_bpe.tokenize(text)
        assert hard_bpe.detokenize(pieces) == text
        ids = vocab.encode(pieces)
        assert vocab.unk_id not in ids
        assert hard_bpe.detokenize(vocab.decode(ids)) == text


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_any_text_round_trips(hard_bpe, text):
    assert "".join(split_words(text)) == text
    assert hard_bpe.detokenize(hard_bpe.tokenize(text)) == text


def test_a_character_never_seen_is_a_piece_of_its_own_and_unk_in_the_vocabulary(hard_bpe):
    pieces = hard_bpe.tokenize("Hello Ω")
    assert pieces[-1] == "Ω" and hard_bpe.detokenize(pieces) == "Hello Ω"
    assert Vocab(hard_bpe.symbols()).encode(pieces)[-1] == Vocab([]).unk_id


# -- learning ------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(12))
def test_incremental_learning_finds_the_textbook_merges(seed):
    rnd = random.Random(seed)
    sentences = random_sentences(rnd, 60, letters=rnd.choice(["aab", "ab", "abc", "aaab"]))
    vocab_size = rnd.randint(N_SPECIAL + 4, 60)
    assert BPE.learn(sentences, vocab_size).merges == textbook_merges(sentences, vocab_size)


def test_the_vocabulary_has_the_size_asked_for_and_keeps_every_character():
    sentences = HARD * 3
    alphabet = set("".join(sentences))
    for size in (len(alphabet) + N_SPECIAL + 20, len(alphabet) + N_SPECIAL + 80):
        bpe = BPE.learn(sentences, size)
        assert set(bpe.alphabet) == alphabet and len(bpe.symbols()) == size - N_SPECIAL
        assert len(Vocab(bpe.symbols())) == size
    small = BPE.learn(sentences, 50)                       # fewer ids than characters: all kept
    assert small.merges == [] and set(small.symbols()) == alphabet
    assert N_SPECIAL == len(SPECIALS)


def test_learning_stops_at_pairs_seen_once():
    bpe = BPE.learn(["abcdef"], 100)
    assert bpe.merges == []
    assert BPE.learn(["abcdef"], 100, min_frequency=1).tokenize("abcdef") == ["abcdef"]


def test_the_merges_do_not_depend_on_the_order_of_the_sentences():
    rnd = random.Random(0)
    sentences = random_sentences(rnd, 200, letters="abcd")
    shuffled = sentences[:]
    rnd.shuffle(shuffled)
    assert BPE.learn(sentences, 60).merges == BPE.learn(shuffled, 60).merges


def test_frequent_words_are_one_piece_and_rare_ones_share_pieces():
    words = ["breakable", "unbreakable", "breaking", "unable", "teaching", "teachable"]
    bpe = BPE.learn([" ".join(words)] * 20 + ["the the the"] * 30, 60)
    assert bpe.tokenize("the") == ["the"]
    pieces = bpe.tokenize("unteaching")                     # never seen as a whole
    assert len(pieces) > 1 and bpe.detokenize(pieces) == "unteaching"
    assert Vocab(bpe.symbols()).unk_id not in Vocab(bpe.symbols()).encode(pieces)


def test_encoding_replays_learning():
    """A tokenizer loaded from its merges alone (no remembered training words) encodes the training
    sentences into the pieces that learning left them in."""
    rnd = random.Random(3)
    sentences = random_sentences(rnd, 300, letters="aabcd") + HARD
    bpe = BPE.learn(sentences, 80)
    loaded = BPE.from_dict(bpe.to_dict())
    for sentence in sentences:
        assert loaded.tokenize(sentence) == bpe.tokenize(sentence)


def test_joint_or_one_per_side():
    pairs = [("the red house", "das rote Haus"), ("the red car", "das rote Auto")] * 5
    source, target = learn_for_pairs(pairs, 40)
    assert source is not target
    assert "H" not in source.alphabet and "H" in target.alphabet
    shared, same = learn_for_pairs(pairs, 40, joint=True)
    assert shared is same and {"H", "t"} <= set(shared.alphabet)


# -- saving, and its use in the translator -------------------------------------------------------

def test_saved_as_plain_data_through_json_and_checkpoints(hard_bpe, tmp_path):
    state = hard_bpe.to_dict()
    assert json.loads(json.dumps(state)) == state
    minigrad.save({"src_bpe": state}, tmp_path / "bpe.ckpt")
    loaded = BPE.from_dict(minigrad.load(tmp_path / "bpe.ckpt")["src_bpe"])
    assert loaded.merges == hard_bpe.merges and loaded.symbols() == hard_bpe.symbols()
    assert all(loaded.tokenize(text) == hard_bpe.tokenize(text) for text in HARD)


@pytest.mark.parametrize("state", [{}, {"alphabet": "ab", "merges": []}, {"alphabet": ["ab"], "merges": []},
                                   {"alphabet": ["a"], "merges": [["a"]]}, {"alphabet": ["a"], "merges": [["a", ""]]}])
def test_a_damaged_saved_tokenizer_is_refused(state):
    with pytest.raises(ValueError, match="saved BPE"):
        BPE.from_dict(state)


def test_readable_shows_the_spaces():
    assert readable([" the", "  ", "cat"]) == "\u2581the \u2581\u2581 cat"


def test_bpe_text_is_scored_as_words(hard_bpe):
    assert hard_bpe.kind == "bpe" and metrics.bleu_tokenization(hard_bpe.kind) == "13a"


def test_the_benchmark_runs_on_a_small_corpus():
    """benchmarks/bpe_learn.py, tiny: it runs and its sentences round-trip (the time is not tested)."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "bpe_learn.py"
    result = subprocess.run([sys.executable, str(script), "--pairs", "300", "--merges", "50"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "merges/s" in result.stdout and "all decode exactly: True" in result.stdout
