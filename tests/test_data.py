"""Tests for the built-in tasks (transformer/toy_tasks.py) and data preparation (transformer/data.py)."""
import random

import numpy as np
import pytest

from transformer import toy_tasks
from transformer.data import (BOS, EOS, PAD, UNK, Batch, DataError, Vocab, detokenize, load_tsv,
                              make_batches, pad_batch, split_pairs, tokenize)
from transformer.toy_tasks import (ADJECTIVES, NOUNS, PRONOUNS, TASKS, VERB_ENDINGS, VERBS, Clause,
                                   NounPhrase, draw_unique_pairs, make_task, render_pair,
                                   sample_toy_pair)

NOUN = {n.english: n for n in NOUNS}
ADJ = {a.english: a for a in ADJECTIVES}
VERB = {v.base: v for v in VERBS}
PRONOUN = {p.english: p for p in PRONOUNS}


def phrase(noun, plural=False, definite=True, adjective=None):
    return NounPhrase(NOUN[noun], plural, definite, ADJ[adjective] if adjective else None)


# -- toy_tasks: every task -----------------------------------------------------------------------

@pytest.mark.parametrize("name", TASKS)
def test_make_task_is_deterministic_under_a_seed(name):
    assert make_task(name, 300, 50, seed=3) == make_task(name, 300, 50, seed=3)
    assert make_task(name, 300, 50, seed=3) != make_task(name, 300, 50, seed=4)


@pytest.mark.parametrize("name", TASKS)
def test_valid_sources_never_appear_in_train(name):
    train, valid = make_task(name, 5000, 500, seed=0)
    assert len(train) == 5000 and len(valid) == 500
    train_sources = [s for s, _ in train]
    valid_sources = [s for s, _ in valid]
    assert len(set(train_sources)) == len(train_sources)
    assert len(set(valid_sources)) == len(valid_sources)
    assert not set(train_sources) & set(valid_sources)


@pytest.mark.parametrize("name", TASKS)
def test_valid_set_does_not_depend_on_n_train(name):
    assert make_task(name, 100, 40, seed=1)[1] == make_task(name, 900, 40, seed=1)[1]


def test_copy_and_reverse_targets():
    for source, target in make_task("copy", 200, 0)[0]:
        assert source == target and 3 <= len(source.split()) <= 10
    for source, target in make_task("reverse", 200, 0)[0]:
        assert target.split() == source.split()[::-1]


def test_unknown_task_and_too_small_space_raise():
    with pytest.raises(ValueError, match="unknown task"):
        make_task("french", 10, 10)
    two_sentences = lambda rng: (rng.choice(["a b c", "c b a"]),) * 2
    assert len(draw_unique_pairs(two_sentences, 2, random.Random(0))) == 2
    with pytest.raises(ValueError, match="too small"):
        draw_unique_pairs(two_sentences, 3, random.Random(0))
    with pytest.raises(ValueError, match="too small"):
        draw_unique_pairs(two_sentences, 1, random.Random(0), exclude_sources={"a b c", "c b a"})


# -- toy_tasks: the toy language -----------------------------------------------------------------

def test_worked_examples_from_the_grammar_description():
    examples = {
        Clause(phrase("dog", adjective="big"), VERB["see"], obj=phrase("cat", definite=False)):
            ("the big dog sees a cat", "lo grando kan unan mis vidit"),
        Clause(PRONOUN["we"], VERB["give"], obj=phrase("book", adjective="old"),
               indirect_obj=phrase("girl", plural=True)):
            ("we give the old book to the girls", "nos lim feni len veten libr donumus"),
        Clause(PRONOUN["she"], VERB["say"], that_clause=Clause(
            phrase("boy", plural=True), VERB["help"], obj=phrase("teacher", definite=False))):
            ("she says that the boys help a teacher", "ela dikit ke li bali unom dokt jutunt"),
        Clause(phrase("apple", plural=True, definite=False, adjective="old"), VERB["sleep"],
               because_clause=Clause(PRONOUN["i"], VERB["follow"], obj=phrase("queen"))):
            ("some old apples sleep because i follow the queen", "uni veti pomi dormunt zar mi lam regin sekvu"),
    }
    for clause, expected in examples.items():
        assert render_pair(clause) == expected
    after_heading = toy_tasks.TOY_GRAMMAR.split("Worked examples:\n")[1]
    documented = [line.split("->") for line in after_heading.split("\n\n")[0].splitlines()]
    assert len(documented) == 3
    for source, target in documented:                  # the examples in the docs are right too
        assert (source.strip(), target.strip()) in examples.values()


@pytest.mark.parametrize("noun", NOUNS, ids=lambda n: n.english)
def test_articles_and_adjectives_agree_in_gender_number_and_case(noun):
    vowel = {"m": "o", "f": "a", "n": "e"}[noun.gender]
    for plural in (False, True):
        v = "i" if plural else vowel
        np_ = NounPhrase(noun, plural, True, ADJ["big"])
        stem = noun.stem + ("i" if plural else "")
        subject = render_pair(Clause(np_, VERB["sleep"]))[1].split()
        assert subject[:3] == ["l" + v, "grand" + v, stem]
        obj = render_pair(Clause(PRONOUN["i"], VERB["see"], obj=np_))[1].split()
        assert obj[1:4] == ["l" + v + "n", "grand" + v + "n", stem]
        dative_obj = render_pair(Clause(PRONOUN["i"], VERB["help"], obj=np_))[1].split()
        assert dative_obj[1:4] == ["l" + v + "m", "grand" + v + "m", stem]
        indirect = render_pair(Clause(PRONOUN["i"], VERB["give"], obj=phrase("book"), indirect_obj=np_))[1]
        assert indirect.split()[1:4] == ["l" + v + "m", "grand" + v + "m", stem]


def test_verb_agrees_with_subject():
    expected_ending = {"i": "u", "you": "is", "he": "it", "she": "it", "we": "umus", "they": "unt"}
    for pronoun, ending in expected_ending.items():
        source, target = render_pair(Clause(PRONOUN[pronoun], VERB["see"], obj=phrase("dog")))
        assert target.split()[-1] == "vid" + ending
    assert render_pair(Clause(phrase("dog"), VERB["run"])) == ("the dog runs", "lo kan kurit")
    assert render_pair(Clause(phrase("dog", plural=True), VERB["run"])) == ("the dogs run", "li kani kurunt")


def _verb_and_person(source_words):
    """Read the verb and the subject's person off a one-clause source sentence, independently of the generator."""
    forms = {}
    for verb in VERBS:
        forms[verb.base], forms[verb.third_person] = (verb, None), (verb, "3sg")
    verb = next(forms[w][0] for w in source_words if w in forms)
    pronoun = PRONOUN.get(source_words[0])
    if pronoun:
        return verb, pronoun.person
    noun_word = next(w for w in source_words if w in NOUN or (w.endswith("s") and w[:-1] in NOUN))
    return verb, "3sg" if noun_word in NOUN else "3pl"


def test_generated_data_obeys_verb_final_order_and_agreement():
    train, _ = make_task("toy", 3000, 0, seed=5)
    checked = 0
    for source, target in train:
        words = source.split()
        if "that" in words or "because" in words:
            continue
        verb, person = _verb_and_person(words)
        assert target.split()[-1] == verb.stem + VERB_ENDINGS[person], (source, target)
        checked += 1
    assert checked > 1000


def test_toy_is_not_word_by_word():
    train, _ = make_task("toy", 5000, 0, seed=0)
    # "the" turns into many different words, chosen by the noun's gender/number and the case.
    the_translations = {t.split()[0] for s, t in train if s.startswith("the ")}
    assert {"lo", "la", "le", "li"} <= the_translations
    # The same noun keeps its gender: a sentence-initial "the <singular noun>" always gets one article.
    article_of = {}
    for source, target in train:
        words = source.split()
        if words[0] == "the" and words[1] in NOUN:
            article_of.setdefault(words[1], set()).add(target.split()[0])
    assert article_of and all(len(articles) == 1 for articles in article_of.values())
    assert len({a for articles in article_of.values() for a in articles}) == 3
    # Word order changes: in "S V O" the verb is no longer second.
    source, target = render_pair(Clause(phrase("boy"), VERB["see"], obj=phrase("cat")))
    assert (source, target) == ("the boy sees the cat", "lo bal lan mis vidit")


def test_toy_target_is_a_function_of_the_source():
    rng = random.Random(0)
    translation = {}
    repeats = 0
    for _ in range(100_000):
        source, target = sample_toy_pair(rng)
        repeats += source in translation
        assert translation.setdefault(source, target) == target, source
    assert repeats > 1000    # the check above really compared repeated sources
    # Across seeds too (sentences drawn in different contexts).
    for source, target in make_task("toy", 20_000, 0, seed=9)[0]:
        assert translation.get(source, target) == target


def test_toy_lexicon_has_no_ambiguous_words():
    """Each word form belongs to one category on each side; this is what keeps the translation a function."""
    english = [
        {n.english for n in NOUNS} | {n.english + "s" for n in NOUNS},
        {a.english for a in ADJECTIVES},
        {v.base for v in VERBS} | {v.third_person for v in VERBS},
        {p.english for p in PRONOUNS}, {"the", "a", "an", "some", "to", "that", "because"},
    ]
    endings = [e for table in toy_tasks.AGREEMENT_ENDINGS.values() for e in table.values()]
    target = [
        {n.stem for n in NOUNS} | {n.stem + "i" for n in NOUNS},
        {a.stem + e for a in ADJECTIVES for e in endings},
        {v.stem + e for v in VERBS for e in VERB_ENDINGS.values()},
        {p.target for p in PRONOUNS} | {"l" + e for e in endings} | {"un" + e for e in endings} | {"ke", "zar"},
    ]
    for side in (english, target):
        assert sum(map(len, side)) == len(set().union(*side))
    assert len(NOUNS) == 30 and len(ADJECTIVES) == 15 and len(VERBS) >= 20


def test_toy_sentence_lengths_and_space():
    train, _ = make_task("toy", 5000, 0, seed=0)
    source_lengths = [len(s.split()) for s, _ in train]
    target_lengths = [len(t.split()) for _, t in train]
    assert max(source_lengths) <= 16 and max(target_lengths) <= 16
    assert 5 <= np.mean(source_lengths) <= 10 and 5 <= np.mean(target_lengths) <= 10


# -- load_tsv ------------------------------------------------------------------------------------

def write(tmp_path, content, name="pairs.tsv"):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def test_load_tsv_reads_pairs_and_ignores_extra_columns_and_blank_lines(tmp_path):
    path = write(tmp_path, "\ufeffGo.\tVe.\n\nHi!\t¡Hola!\tCC-BY 2.0 (France) Attribution: tatoeba.org\r\n  \n")
    assert load_tsv(path) == ([("Go.", "Ve."), ("Hi!", "¡Hola!")], 0)


@pytest.mark.parametrize("bad_line, why", [("no tab here", "no tab"), ("   \tVe.", "empty source"),
                                           ("Go.\t  ", "empty target"), ("Go.\t\tx", "empty target")])
def test_load_tsv_bad_line_names_file_and_line(tmp_path, bad_line, why):
    path = write(tmp_path, f"a\tb\n\n{bad_line}\nc\td\n")
    with pytest.raises(DataError, match=why) as error:
        load_tsv(path)
    assert f"{path}:3:" in str(error.value)


def test_load_tsv_skip_bad_lines_counts_them(tmp_path):
    path = write(tmp_path, "a\tb\nno tab\n\tx\nc\td\ny\t\n")
    assert load_tsv(path, skip_bad_lines=True) == ([("a", "b"), ("c", "d")], 3)


def test_load_tsv_empty_file(tmp_path):
    for content in ("", "\n  \n"):
        path = write(tmp_path, content)
        with pytest.raises(DataError, match="no sentence pairs") as error:
            load_tsv(path)
        assert str(path) in str(error.value)
    with pytest.raises(DataError, match="2 bad lines skipped"):
        load_tsv(write(tmp_path, "x\ny\n"), skip_bad_lines=True)


def test_load_tsv_non_utf8_names_the_line(tmp_path):
    path = write(tmp_path, "a\tb\nc\td\n".encode() + b"\xff\xfe\tx\n" + "e\tf\n".encode())
    with pytest.raises(DataError, match="UTF-8") as error:
        load_tsv(path)
    assert f"{path}:3:" in str(error.value)


def test_load_tsv_missing_file(tmp_path):
    path = tmp_path / "nope.tsv"
    with pytest.raises(DataError, match="not found") as error:
        load_tsv(path)
    assert str(path) in str(error.value)
    assert issubclass(DataError, ValueError)


# -- tokenize / detokenize -----------------------------------------------------------------------

def test_word_tokens_keep_case_and_split_off_punctuation():
    assert tokenize("¿Dónde está Ana?") == ["¿", "Dónde", "está", "Ana", "?"]
    assert tokenize('He said: "don\'t go," then left!') == \
        ["He", "said", ":", '"', "don't", "go", ",", '"', "then", "left", "!"]
    assert tokenize("  ") == []


def test_detokenize_reattaches_punctuation():
    for text in ("¿Dónde está Ana?", "Hi, Tom! I'm here.", "¡Hola!"):
        assert detokenize(tokenize(text)) == text


def test_char_tokens_show_spaces():
    assert tokenize("ab  c", kind="char") == ["a", "b", "▁", "c"]
    assert detokenize(tokenize("Hi, you.", kind="char"), kind="char") == "Hi, you."
    with pytest.raises(ValueError):
        tokenize("x", kind="bpe")


# -- Vocab ---------------------------------------------------------------------------------------

def test_vocab_specials_come_first():
    vocab = Vocab(["b", "a"])
    assert vocab.to_list()[:4] == [PAD, UNK, BOS, EOS]
    assert (vocab.pad_id, vocab.unk_id, vocab.bos_id, vocab.eos_id) == (0, 1, 2, 3)
    assert vocab.encode([PAD, UNK, BOS, EOS]) == [0, 1, 2, 3]
    assert vocab.encode(["b", "a"]) == [4, 5] and len(vocab) == 6


def test_vocab_build_orders_by_frequency_then_token_and_applies_min_freq_and_max_size():
    sentences = [["b", "a", "c"], ["c", "b", "d"], ["c", "z", EOS]]
    vocab = Vocab.build(sentences)
    assert vocab.to_list()[4:] == ["c", "b", "a", "d", "z"]
    assert Vocab.build(reversed(sentences)).to_list() == vocab.to_list()
    assert Vocab.build(sentences, min_freq=2).to_list()[4:] == ["c", "b"]
    assert len(Vocab.build(sentences, max_size=6)) == 6
    with pytest.raises(ValueError):
        Vocab.build(sentences, max_size=3)


def test_vocab_unknown_tokens_bos_eos():
    vocab = Vocab.build([["hello", "world"]])
    assert vocab.encode(["hello", "there"], add_bos=True, add_eos=True) == [2, 4, 1, 3]


def test_vocab_round_trips_through_a_list():
    vocab = Vocab.build([["x", "y", "y"]])
    again = Vocab.from_list(vocab.to_list())
    assert again.to_list() == vocab.to_list() == [PAD, UNK, BOS, EOS, "y", "x"]
    assert again.encode(["x", "y"]) == vocab.encode(["x", "y"])
    with pytest.raises(ValueError):
        Vocab.from_list(["x", PAD, UNK, BOS, EOS])
    with pytest.raises(ValueError, match="duplicate"):
        Vocab(["x", "x"])


def test_vocab_decode_stops_at_eos():
    vocab = Vocab(["a", "b"])
    ids = np.array([2, 4, 0, 1, 5, 3, 4, 0])
    assert vocab.decode(ids) == ["a", UNK, "b"]
    assert vocab.decode(ids, strip_specials=False) == [BOS, "a", PAD, UNK, "b", EOS, "a", PAD]


# -- split_pairs ---------------------------------------------------------------------------------

def _pairs_with_repeated_sources():
    return [(f"s{i % 70}", f"t{i}") for i in range(200)]     # 70 sources, 2-3 translations each


def test_split_pairs_holds_out_whole_sources():
    pairs = _pairs_with_repeated_sources()
    train, valid = split_pairs(pairs, n_valid=25, seed=0)
    assert len(valid) == 25
    assert not {s for s, _ in train} & {s for s, _ in valid}
    assert set(train) | set(valid) <= set(pairs) and not set(train) & set(valid)
    assert train == [p for p in pairs if p in set(train)]        # file order kept
    assert len(train) + len(valid) >= len(pairs) - 2             # at most one source's leftovers dropped


def test_split_pairs_is_deterministic_and_validated():
    pairs = _pairs_with_repeated_sources()
    assert split_pairs(pairs, 30, seed=1) == split_pairs(pairs, 30, seed=1)
    assert split_pairs(pairs, 30, seed=1) != split_pairs(pairs, 30, seed=2)
    assert split_pairs(pairs, 0, seed=1) == (pairs, [])
    with pytest.raises(ValueError):
        split_pairs(pairs, 200, seed=0)
    with pytest.raises(ValueError, match="no training pairs"):
        split_pairs([("a", "x"), ("a", "y")], 1, seed=0)


# -- batches -------------------------------------------------------------------------------------

def _examples(n=1000, seed=0):
    """Example i has source [100 + i, ...] so it can be identified in any batch."""
    rng = np.random.default_rng(seed)
    src = [[100 + i] + [7] * int(rng.integers(0, 30)) for i in range(n)]
    tgt = [[8] * max(1, len(s) + int(rng.integers(-3, 4))) for s in src]   # lengths correlate, as in translation
    return src, tgt


def test_pad_batch():
    batch = pad_batch([[5, 6, 7], [8]], pad_id=0)
    assert batch.dtype == np.int64
    assert batch.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert pad_batch([], 0).shape == (0, 0)


def test_make_batches_shapes_and_contents():
    batches = make_batches([[5, 6, 7], [8]], [[9], [10, 11]], batch_size=2, pad_id=0, bos_id=2, eos_id=3,
                           shuffle=False, bucket=False)
    assert len(batches) == 1
    batch = batches[0]
    assert isinstance(batch, Batch)
    assert batch.src.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch.tgt_in.tolist() == [[2, 9, 0], [2, 10, 11]]
    assert batch.tgt_out.tolist() == [[9, 3, 0], [10, 11, 3]]
    assert batch.n_tokens == 5 == int((batch.tgt_out != 0).sum())
    assert all(a.dtype == np.int64 for a in (batch.src, batch.tgt_in, batch.tgt_out))


@pytest.mark.parametrize("shuffle, bucket", [(False, False), (False, True), (True, False), (True, True)])
def test_make_batches_covers_every_example_exactly_once(shuffle, bucket):
    src, tgt = _examples()
    batches = make_batches(src, tgt, 64, 0, 2, 3, shuffle=shuffle, rng=np.random.default_rng(0), bucket=bucket)
    seen = np.concatenate([b.src[:, 0] for b in batches]) - 100
    assert sorted(seen.tolist()) == list(range(len(src)))
    assert sorted(len(b.src) for b in batches) == [1000 - 15 * 64] + [64] * 15
    for b in batches:
        for row, i in enumerate(b.src[:, 0] - 100):
            assert b.tgt_out[row, :len(tgt[i]) + 1].tolist() == tgt[i] + [3]
            assert (b.tgt_out[row, len(tgt[i]) + 1:] == 0).all()
        assert b.src.shape[1] == max(len(src[i]) for i in b.src[:, 0] - 100)   # padded per batch


def test_bucketing_reduces_padding():
    src, tgt = _examples()

    def pads(bucket):
        batches = make_batches(src, tgt, 32, 0, 2, 3, shuffle=True, rng=np.random.default_rng(1), bucket=bucket)
        return (sum(int((b.src == 0).sum()) for b in batches), sum(int((b.tgt_out == 0).sum()) for b in batches))

    (src_bucketed, tgt_bucketed), (src_random, tgt_random) = pads(bucket=True), pads(bucket=False)
    assert src_bucketed < 0.1 * src_random
    assert tgt_bucketed < 0.5 * tgt_random


def test_make_batches_is_deterministic_given_the_rng():
    src, tgt = _examples()

    def first_ids(seed, shuffle=True):
        rng = np.random.default_rng(seed) if seed is not None else None
        return [b.src[:, 0].tolist() for b in make_batches(src, tgt, 50, 0, 2, 3, shuffle=shuffle, rng=rng)]

    assert first_ids(7) == first_ids(7)
    assert first_ids(7) != first_ids(8)
    assert first_ids(None, shuffle=False) == first_ids(None, shuffle=False)
    with pytest.raises(ValueError, match="rng"):
        first_ids(None, shuffle=True)


def test_make_batches_rejects_empty_source_and_mismatched_lengths():
    with pytest.raises(ValueError, match="empty source"):
        make_batches([[4], []], [[5], [6]], 2, 0, 2, 3, shuffle=False)
    with pytest.raises(ValueError):
        make_batches([[4]], [[5], [6]], 2, 0, 2, 3, shuffle=False)


def test_load_tsv_says_how_to_skip_a_bad_line_and_skips_non_utf8_too(tmp_path):
    path = write(tmp_path, b"a\tb\nno tab\n\xff\xfe\tx\nc\td\n")
    with pytest.raises(DataError, match="no tab between source and target; skip_bad_lines=True would skip it"):
        load_tsv(path)
    with pytest.raises(DataError, match=r"pairs.tsv:2: no tab .*; --skip-bad-lines would skip it$"):
        load_tsv(path, skip_hint="--skip-bad-lines would skip it")
    with pytest.raises(DataError, match=r":3: not valid UTF-8 .*; --skip-bad-lines would skip it$"):
        load_tsv(write(tmp_path, b"a\tb\n\n\xff\xfe\tx\n", "latin.tsv"), skip_hint="--skip-bad-lines would skip it")
    assert load_tsv(path, skip_bad_lines=True) == ([("a", "b"), ("c", "d")], 2)
