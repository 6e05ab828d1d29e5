"""The corpus of a run (transformer/corpus.py): the same held-out pairs every time for the same
settings, training pairs longer than --max-len left out, and source ids a model always accepts."""
import pytest

from transformer.corpus import (DEFAULT_VALID_SIZE, SourceTooLong, encode_sources, prepare_corpus, read_pairs,
                                read_pairs_file)
from transformer.data import DataError, Vocab, tokenize
from transformer.errors import UsageError
from transformer.run_settings import TRAIN_DEFAULTS


def settings(**changes):
    return {**TRAIN_DEFAULTS, "train_size": 60, "valid_size": 8, **changes}


def write_pairs(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def test_a_task_gives_the_same_pairs_for_the_same_seed():
    train, valid = read_pairs(settings(task="copy", seed=3))
    assert (len(train), len(valid)) == (60, 8)
    assert read_pairs(settings(task="copy", seed=3)) == (train, valid)
    assert read_pairs(settings(task="copy", seed=4)) != (train, valid)
    assert not {s for s, _ in valid} & {s for s, _ in train}
    assert len(read_pairs(settings(task="copy", valid_size=None))[1]) == DEFAULT_VALID_SIZE


def test_a_file_holds_out_a_tenth_by_default(tmp_path, capsys):
    data = write_pairs(tmp_path / "pairs.tsv", [f"s{i} x\tt{i} y" for i in range(50)] + ["bad line"])
    train, valid = read_pairs(settings(data=data, valid_size=None, skip_bad_lines=True))
    assert (len(train), len(valid)) == (45, 5)
    assert "skipped 1 bad line in" in capsys.readouterr().out
    assert sorted(train + valid) == sorted(read_pairs_file(data, skip_bad_lines=True))
    with pytest.raises(UsageError, match="--valid-size"):
        read_pairs(settings(data=data, valid_size=50, skip_bad_lines=True))


def test_prepare_corpus_skips_long_pairs_and_builds_vocabularies_on_the_rest(tmp_path, capsys):
    lines = [f"a{i} b c\tx{i} y" for i in range(10)] + ["long " * 9 + "\tshort", "short\t" + "long " * 9]
    data = write_pairs(tmp_path / "pairs.tsv", lines)
    corpus = prepare_corpus(settings(data=data, valid_size=2, max_len=6))
    assert "skipped 2 training pairs longer than --max-len 6" in capsys.readouterr().out
    assert len(corpus.train_src) == len(corpus.train_tgt) == 8 and len(corpus.valid_pairs) == 2
    assert "long" not in corpus.src_vocab and "long" not in corpus.tgt_vocab
    for (source, target), src_ids, tgt_ids in zip([p for p in corpus.train_pairs if "long" not in p[0] + p[1]],
                                                  corpus.train_src, corpus.train_tgt):
        assert corpus.src_vocab.decode(src_ids) == tokenize(source)
        assert corpus.tgt_vocab.decode(tgt_ids) == tokenize(target)
    with pytest.raises(UsageError, match="no training pairs left"):
        prepare_corpus(settings(data=data, valid_size=2, max_len=3))


def test_held_out_ids_are_cut_to_the_model_length():
    corpus = prepare_corpus(settings(task="reverse", valid_size=20))
    sources, targets = corpus.valid_ids(max_len=5)
    assert len(sources) == len(targets) == 20
    assert max(map(len, sources + targets)) <= 3 and min(map(len, sources)) >= 1
    (source, target), = corpus.valid_pairs[:1]
    assert sources[0] == corpus.src_vocab.encode(tokenize(source)[:3])
    assert targets[0] == corpus.tgt_vocab.encode(tokenize(target)[:3])


def test_encode_sources_never_gives_an_empty_source():
    vocab = Vocab(["a", "b"])
    a, b = vocab.encode(["a", "b"])
    assert encode_sources(["a b", "", "b zzz"], vocab, "word", max_len=4) == [[a, b], [vocab.unk_id], [b, vocab.unk_id]]


def test_a_source_too_long_for_the_model_is_never_cut_silently():
    vocab = Vocab(["a", "b"])
    a, b = vocab.encode(["a", "b"])
    sentences = ["a b", "a b a", "b"]                   # the second has 3 tokens; max_len 4 leaves room for 2
    with pytest.raises(SourceTooLong, match=r"^sentence 2 has 3 tokens, more than the 2 that the model takes "
                                            r"\(its max_len 4, less <bos> and <eos>\)") as error:
        encode_sources(sentences, vocab, "word", max_len=4)
    assert (error.value.index, error.value.length, error.value.max_len) == (1, 3, 4)
    assert isinstance(error.value, UsageError)            # train.py: one line, exit code 2
    assert encode_sources(sentences, vocab, "word", max_len=4, too_long="skip") == [[a, b], None, [b]]
    assert encode_sources(sentences, vocab, "word", max_len=4, too_long="cut") == [[a, b], [a, b], [b]]
    assert encode_sources(sentences, vocab, "word", max_len=5) == [[a, b], [a, b, a], [b]]
    with pytest.raises(ValueError, match="too_long"):
        encode_sources(sentences, vocab, "word", max_len=4, too_long="truncate")


def test_messages_name_the_command_line_flags(tmp_path):
    data = write_pairs(tmp_path / "pairs.tsv", [f"s{i} x\tt{i} y" for i in range(10)] + ["bad line"])
    with pytest.raises(DataError, match=r"pairs.tsv:11: no tab between source and target; "
                                        r"--skip-bad-lines would skip it$") as error:
        read_pairs_file(data, skip_bad_lines=False)
    assert "skip_bad_lines" not in str(error.value)
    with pytest.raises(UsageError, match=r"--valid-size must be between 0 and 9 for the 10 pairs of .*, got 10$"):
        read_pairs(settings(data=data, valid_size=10, skip_bad_lines=True))
    same = write_pairs(tmp_path / "same.tsv", ["a\tb", "a\tc", "a\td"])
    with pytest.raises(UsageError, match="--valid-size 1 leaves no training pairs: .* only 1 distinct source"):
        read_pairs(settings(data=same, valid_size=1))


def test_a_bpe_corpus_has_every_piece_in_its_vocabularies_and_reuses_given_tokenizers(capsys, monkeypatch):
    corpus = prepare_corpus(settings(task="toy", tokenizer="bpe", vocab_size=200))
    source, target = corpus.tokenizer
    assert corpus.src_vocab.to_list()[4:] == source.symbols() and corpus.tgt_vocab.to_list()[4:] == target.symbols()
    assert all(corpus.src_vocab.unk_id not in ids for ids in corpus.train_src + corpus.train_tgt)
    joint = prepare_corpus(settings(task="toy", tokenizer="bpe", vocab_size=200, joint_vocab=True))
    assert joint.src_vocab is joint.tgt_vocab and len(joint.src_vocab) == 200
    assert "BPE: learned" in capsys.readouterr().out

    def never(*args, **kwargs):
        raise AssertionError("learned again")
    monkeypatch.setattr("transformer.bpe.BPE.learn", never)
    again = prepare_corpus(settings(task="toy", tokenizer="bpe", vocab_size=200), corpus.tokenizer)
    assert again.train_src == corpus.train_src and again.tokenizer is corpus.tokenizer
