"""train.py's BPE runs and its evaluate / translate / export commands (transformer/commands.py), end to end
through train.main: subword tokens learned, stored and reused, exact detokenisation through the whole command
line, n-best lists with scores, sentences too long for the model, and the .safetensors round trip."""
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest

import minigrad
from transformer import bpe, commands, scoring
from transformer.checkpoint import load_checkpoint
from transformer.corpus import read_pairs
from transformer.data import Vocab
from transformer.run_log import read_records

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import train  # noqa: E402
from test_train import TINY, keep_global_rng, run, trained_run  # noqa: E402,F401  (fixtures: used here too)


# Sentences a tokenizer gets wrong easily: accents precomposed and combining, Hangul, punctuation runs,
# inner double spaces, an apostrophe, digits with separators.
SENTENCES = ["Où est la gare ?", "Je t'aime  beaucoup...", "e\u0301te\u0301 à Paris, 3.5 km!",
             "한국어 문장입니다.", "¿Dónde está Ana?", "«Bonjour», dit-il ;-)", "안녕하세요  세계!",
             "Naïve café (crème brûlée)", "l'élève—très fier—arrive", "1,000 ünïcödé wörds"]


def write_pairs(path, pairs):
    path.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def bpe_run(tmp_path_factory):
    """A joint-BPE copy run on SENTENCES (each pair: a sentence and itself), 3 held out."""
    folder = tmp_path_factory.mktemp("bpe")
    data = write_pairs(folder / "pairs.tsv", [(s, s) for s in SENTENCES * 3])
    assert train.main(TINY + ["--data", str(data), "--tokenizer", "bpe", "--vocab-size", "120", "--joint-vocab",
                              "--valid-size", "1", "--steps", "4", "--out", str(folder / "run")]) == 0
    return folder / "run"


def copy_model(monkeypatch, module):
    """Decoding that outputs its source ids: with a joint vocabulary, a perfect copy model."""
    def copy(model, sources, tgt_vocab, device, beam=None, batch_size=250, n_best=None, length_penalty=0.6):
        return [list(ids) for ids in sources]
    monkeypatch.setattr(module, "translate_ids", copy)


# -- BPE in training ----------------------------------------------------------------------------

def test_a_bpe_run_stores_its_merges_and_its_vocabulary_is_every_piece(bpe_run):
    state = load_checkpoint(bpe_run)
    source, target = state["tokenizers"]
    assert isinstance(source, bpe.BPE) and source is target                 # --joint-vocab: one BPE
    assert state["settings"]["tokenizer"] == "bpe" and state["settings"]["joint_vocab"] is True
    assert state["src_vocab"] == state["tgt_vocab"] == Vocab(source.symbols()).to_list()
    assert len(state["src_vocab"]) == 120
    assert set("한국어éàüö") <= set(source.alphabet)


def training_sentences(run_dir):
    train_pairs, held_out = read_pairs(load_checkpoint(run_dir)["settings"])
    assert len({s for s, _ in held_out}) == 1
    return list(dict.fromkeys(s for s, _ in train_pairs))


def test_every_training_sentence_round_trips_exactly_through_the_command_line(bpe_run, capsys, monkeypatch):
    """translate with a model that copies its input: whatever goes in comes out, byte for byte."""
    copy_model(monkeypatch, commands)
    sentences = training_sentences(bpe_run)
    assert len(sentences) == len(SENTENCES) - 1
    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(s + "\n" for s in sentences)))
    code, out, err = run(["translate", "--checkpoint", bpe_run], capsys)
    assert code == 0 and out == "".join(s + "\n" for s in sentences) and "<unk>" not in err


def test_scores_of_a_bpe_run_are_on_the_detokenised_text(bpe_run, tmp_path, capsys, monkeypatch):
    copy_model(monkeypatch, scoring)
    sentences = training_sentences(bpe_run)
    data = write_pairs(tmp_path / "copy.tsv", [(s, s) for s in sentences])
    code, out, _ = run(["evaluate", "--checkpoint", bpe_run, "--data", data], capsys)
    assert code == 0 and "exact match 100.0%" in out and "BLEU 100.0 (tokenize 13a)" in out and "chrF 100.0" in out
    other = write_pairs(tmp_path / "other.tsv", [(s, s + " x") for s in sentences])
    code, out, _ = run(["evaluate", "--checkpoint", bpe_run, "--data", other], capsys)
    assert code == 0 and "exact match 0.0%" in out and "BLEU 100.0" not in out


def test_a_bpe_run_learns_on_the_training_pairs_only(tmp_path, capsys):
    marks = "ABCDEFGHIJKLMNOPQRST"                        # each pair has a character of its own
    data = write_pairs(tmp_path / "p.tsv", [(f"ab {c}", f"xy {c.lower()}") for c in marks])
    code, out, _ = run(TINY + ["--data", data, "--tokenizer", "bpe", "--vocab-size", "40", "--valid-size", "2",
                               "--steps", "1", "--out", tmp_path / "run"], capsys)
    assert code == 0 and "BPE: learned on the 18 training pairs" in out and "source merges" in out
    state = load_checkpoint(tmp_path / "run")
    held_out = {s[-1] for s, _ in read_pairs(state["settings"])[1]}
    source, target = state["tokenizers"]
    assert len(held_out) == 2 and set(source.alphabet) & set(marks) == set(marks) - held_out
    assert "x" not in source.alphabet and "A" not in target.alphabet          # one BPE per side
    assert state["src_vocab"] != state["tgt_vocab"]


def test_a_resumed_bpe_run_reuses_the_stored_merges_and_continues_exactly(tmp_path, capsys, monkeypatch):
    data = write_pairs(tmp_path / "pairs.tsv", [(s, s[::-1]) for s in SENTENCES * 3])
    flags = TINY + ["--data", data, "--tokenizer", "bpe", "--vocab-size", "80", "--valid-size", "2"]
    assert run(flags + ["--steps", "6", "--out", tmp_path / "whole"], capsys)[0] == 0
    assert run(flags + ["--steps", "3", "--out", tmp_path / "split"], capsys)[0] == 0

    def never(*args, **kwargs):
        raise AssertionError("a resumed run learned its BPE again")
    monkeypatch.setattr(bpe.BPE, "learn", never)
    code, out, _ = run(["--resume", tmp_path / "split", "--steps", "6", "--no-progress"], capsys)
    assert code == 0 and "at step 3" in out and "BPE: learned" not in out
    whole = [r for r in read_records(tmp_path / "whole") if r["kind"] == "train"]
    split = [r for r in read_records(tmp_path / "split") if r["kind"] == "train"]
    assert [r["step"] for r in split] == list(range(1, 7))
    for a, b in zip(whole, split):
        assert abs(a["loss"] - b["loss"]) <= 1e-6, (a["step"], a["loss"], b["loss"])


@pytest.mark.parametrize("argv, message", [
    (["--vocab-size", "100"], "--vocab-size size BPE pieces: add --tokenizer bpe (the run's tokenizer is word)"),
    (["--tokenizer", "char", "--joint-vocab"], "--joint-vocab size BPE pieces: add --tokenizer bpe"),
    (["--tokenizer", "bpe", "--min-freq", "2"], "--min-freq 2 does not apply to --tokenizer bpe"),
    (["--tokenizer", "bpe", "--vocab-size", "4"], "--vocab-size must be at least 5"),
])
def test_tokenizer_flags_that_do_not_fit_are_one_line(tmp_path, capsys, argv, message):
    code, _, err = run(TINY + ["--steps", "1", "--out", tmp_path / "run"] + argv, capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("tokenizers, message", [
    ('{"joint": {"alphabet": ["ab"], "merges": []}}', "'tokenizers' is malformed: the joint tokenizer: a saved BPE "
                                                      "needs 'alphabet', a list of single characters"),
    ('{"source": "word", "target": "word"}', "'tokenizers' holds word/word tokenizers, but the settings say "
                                             "--tokenizer bpe"),
    ('{"source": {"alphabet": ["a"], "merges": [["a"]]}, "target": "char"}', "the source tokenizer: a saved BPE "
                                                                             "needs 'merges'"),
    ("[1, 2]", "'tokenizers' is malformed: the tokenizers should be a JSON object, not list"),
    ("{", "'tokenizers' is malformed"),
    (None, "a --tokenizer bpe run, but the checkpoint holds no BPE merges"),
])
def test_a_checkpoint_with_malformed_tokenizers_is_one_line(bpe_run, tmp_path, capsys, tokenizers, message):
    state = minigrad.load(str(bpe_run / "last.ckpt"))
    if tokenizers is None:
        del state["tokenizers"]
    else:
        state["tokenizers"] = tokenizers
    minigrad.save(state, str(tmp_path / "bad.ckpt"))
    code, _, err = run(["translate", "--checkpoint", tmp_path / "bad.ckpt", "Où est la gare ?"], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_help_names_the_new_defaults(capsys):
    with pytest.raises(SystemExit):
        train.main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "{word,char,bpe}" in text and "(default: 8000)" in text and "--joint-vocab" in text
    for command, expected in (("translate", ["--n-best N", "--output FILE", "default: 0.6", "default: 250"]),
                              ("evaluate", ["--length-penalty ALPHA", "default: 0.6"]),
                              ("export", ["--out FILE.safetensors"])):
        with pytest.raises(SystemExit):
            train.main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert all(item in text for item in expected), (command, text)


# -- translate: n-best, length penalty, output file, too long -----------------------------------

def parse_nbest(text):
    rows = [line.split(" ||| ") for line in text.splitlines()]
    assert all(len(row) == 4 for row in rows), text
    return [(int(index), hypothesis, float(log_prob), float(score)) for index, hypothesis, log_prob, score in rows]


def test_n_best_lists_best_first_with_scores(trained_run, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("the dog sees a cat\n\nwe sleep\n"))
    code, out, _ = run(["translate", "--checkpoint", trained_run, "--beam", "4", "--n-best", "3"], capsys)
    rows = parse_nbest(out)
    assert code == 0 and [r[0] for r in rows] == [0, 0, 0, 2, 2, 2]          # the blank line 1 has none
    for index in (0, 2):
        scores = [r[3] for r in rows if r[0] == index]
        assert scores == sorted(scores, reverse=True) and all(r[2] <= 0 for r in rows)
    code, best, _ = run(["translate", "--checkpoint", trained_run, "--beam", "4", "the dog sees a cat", "we sleep"],
                        capsys)
    assert best.splitlines() == [rows[0][1], rows[3][1]]                      # the first is the translation
    code, out, _ = run(["translate", "--checkpoint", trained_run, "--beam", "4", "--n-best", "2", "--length-penalty",
                        "0", "we sleep"], capsys)
    assert code == 0 and all(r[2] == r[3] for r in parse_nbest(out))        # alpha 0: the score is log P
    code, out, _ = run(["translate", "--checkpoint", trained_run, "--n-best", "1", "we sleep"], capsys)
    assert code == 0 and len(parse_nbest(out)) == 1                          # greedy, with its scores


@pytest.mark.parametrize("argv, message", [
    (["--n-best", "3"], "--n-best 3 needs --beam K with K >= 3: greedy decoding gives one hypothesis"),
    (["--n-best", "2", "--beam", "1"], "--n-best 2 needs --beam K with K >= 2"),
    (["--n-best", "5", "--beam", "4"], "--n-best 5 is more than --beam 4"),
    (["--n-best", "0", "--beam", "4"], "--n-best must be at least 1, got 0"),
    (["--length-penalty", "nan"], "--length-penalty must be a finite number"),
    (["--output", "/nonexistent/dir/out.txt"], "--output /nonexistent/dir/out.txt: cannot write there"),
])
def test_translate_flags_that_make_no_sense_are_one_line(trained_run, capsys, argv, message):
    code, _, err = run(["translate", "--checkpoint", trained_run, "we sleep"] + argv, capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_output_goes_to_the_file_in_input_order(trained_run, tmp_path, capsys, monkeypatch):
    lines = ["the dog sees a cat", "", "we sleep", "a big cat runs"] * 3
    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(line + "\n" for line in lines)))
    code, out, err = run(["translate", "--checkpoint", trained_run, "--output", tmp_path / "out.txt",
                          "--decode-batch-size", "5"], capsys)
    written = (tmp_path / "out.txt").read_text(encoding="utf-8").split("\n")[:-1]
    assert code == 0 and out == "" and "wrote the translations of 12 lines" in err
    code, expected, _ = run(["translate", "--checkpoint", trained_run] + [line for line in lines if line], capsys)
    translations = iter(expected.splitlines())
    assert written == [next(translations) if line else "" for line in lines]


def test_a_sentence_too_long_for_the_model_is_one_line_not_a_cut(trained_run, capsys, monkeypatch):
    long = " ".join(["the dog"] * 25)                     # 50 tokens; --max-len 40 takes 38
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"we sleep\n\n{long}\n"))
    code, out, err = run(["translate", "--checkpoint", trained_run], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "line 3 of stdin has 50 tokens, more than the 38 that the model takes (its max_len 40" in err
    code, _, err = run(["translate", "--checkpoint", trained_run, "we sleep", long], capsys)
    assert code == 2 and "sentence 2 has 50 tokens" in err


def test_evaluate_skips_and_counts_pairs_too_long_for_the_model(trained_run, tmp_path, capsys):
    data = write_pairs(tmp_path / "p.tsv", [("we sleep", "nos dormumus"), (" ".join(["a cat"] * 30), "x"),
                                            ("the dog runs", "lo kan kurit")])
    code, out, err = run(["evaluate", "--checkpoint", trained_run, "--data", data, "--examples", "3"], capsys)
    assert code == 0 and "on 2 sentences (1 skipped: source longer than the model's max_len)" in out
    assert "(skipped: longer than the model's max_len)" in out
    assert "1 of the 3 pairs were not scored" in err


# -- export and .safetensors --------------------------------------------------------------------

@pytest.fixture
def safetensors():
    return pytest.importorskip("safetensors")


@pytest.mark.parametrize("which", ["word", "bpe"])
def test_export_then_translate_from_the_file_alone(safetensors, trained_run, bpe_run, tmp_path, capsys, which):
    run_dir, sentence = (trained_run, "the dog sees a cat") if which == "word" else (bpe_run, "Où est la gare ?")
    path = tmp_path / "model.safetensors"
    code, out, _ = run(["export", "--checkpoint", run_dir, "--out", path], capsys)
    assert code == 0 and f"wrote {path}" in out
    state = load_checkpoint(run_dir)
    from transformer.safetensors_io import read_safetensors
    tensors, metadata = read_safetensors(path)
    assert tensors.keys() == state["model"].keys()
    for name, value in state["model"].items():
        np.testing.assert_array_equal(tensors[name], value.numpy(), err_msg=name)
    assert json.loads(metadata["src_vocab"]) == state["src_vocab"]
    assert json.loads(metadata["tokenizer"])["joint" if which == "bpe" else "source"]

    expected = [run(["translate", "--checkpoint", run_dir, "--beam", beam, sentence], capsys)[1] for beam in "13"]
    moved = tmp_path / "elsewhere.bin"                    # found by its first bytes, not its name
    moved.write_bytes(path.read_bytes())
    for checkpoint in (path, moved):
        got = [run(["translate", "--checkpoint", checkpoint, "--beam", beam, sentence], capsys)[1] for beam in "13"]
        assert got == expected
    data = write_pairs(tmp_path / "p.tsv", [(sentence, sentence)])
    code, out, _ = run(["evaluate", "--checkpoint", path, "--data", data], capsys)
    assert code == 0 and f"{path} (exported)" in out and "on 1 sentences" in out
    code, _, err = run(["evaluate", "--checkpoint", path], capsys)
    assert code == 2 and "pass --data FILE.tsv" in err


def test_a_safetensors_file_without_a_tokenizer_is_one_line(safetensors, trained_run, tmp_path, capsys):
    from transformer.checkpoint import restore_model
    from transformer.safetensors_io import save_safetensors
    model, src_vocab, tgt_vocab = restore_model(load_checkpoint(trained_run), "cpu")
    save_safetensors(tmp_path / "bare.safetensors", model, src_vocab, tgt_vocab)
    code, _, err = run(["translate", "--checkpoint", tmp_path / "bare.safetensors", "we sleep"], capsys)
    assert code == 2 and "no 'tokenizer' in its metadata" in err and len(err.strip().splitlines()) == 1
    save_safetensors(tmp_path / "odd.safetensors", model, src_vocab, tgt_vocab, tokenizer='{"source": "word"}')
    code, _, err = run(["translate", "--checkpoint", tmp_path / "odd.safetensors", "we sleep"], capsys)
    assert code == 2 and "its 'tokenizer' metadata is malformed" in err


def test_export_without_safetensors_says_how_to_get_it(trained_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "safetensors", None)       # import safetensors now fails
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    code, _, err = run(["export", "--checkpoint", trained_run, "--out", tmp_path / "m.safetensors"], capsys)
    assert code == 2 and 'pip install ".[interop]"' in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m.safetensors").exists()
    code, _, err = run(["translate", "--checkpoint", tmp_path / "m.safetensors", "we sleep"], capsys)
    assert code == 2 and 'pip install ".[interop]"' in err


def test_export_to_a_missing_directory_is_one_line(safetensors, trained_run, tmp_path, capsys):
    code, _, err = run(["export", "--checkpoint", trained_run, "--out", tmp_path / "no" / "m.safetensors"], capsys)
    assert code == 2 and "no directory" in err and len(err.strip().splitlines()) == 1


def test_metrics_name_the_bleu_tokenisation_of_the_target_tokens(bpe_run, tmp_path, capsys):
    from transformer.metrics import bleu_tokenization
    from transformer.tokenizers import Tokenizers
    final = [r for r in read_records(bpe_run) if r["kind"] == "eval"][-1]
    assert final["bleu_tokenize"] == "13a"
    assert bleu_tokenization(Tokenizers("char", "char")) == "char" and bleu_tokenization(Tokenizers("word", "word")) \
        == bleu_tokenization(load_checkpoint(bpe_run)["tokenizers"]) == "13a"
    data = write_pairs(tmp_path / "p.tsv", [(s, s) for s in SENTENCES * 2])
    assert run(TINY + ["--data", data, "--tokenizer", "char", "--valid-size", "2", "--steps", "1",
                       "--out", tmp_path / "run"], capsys)[0] == 0
    assert [r for r in read_records(tmp_path / "run") if r["kind"] == "eval"][-1]["bleu_tokenize"] == "char"


def test_a_tampered_safetensors_config_is_one_line_before_any_model_is_built(safetensors, trained_run, tmp_path, capsys):
    from safetensors.numpy import save_file
    from transformer.safetensors_io import read_safetensors
    path = tmp_path / "m.safetensors"
    assert run(["export", "--checkpoint", trained_run, "--out", path], capsys)[0] == 0
    tensors, metadata = read_safetensors(path)
    for change, message in (({"d_model": 15}, "d_model 15 is not divisible by n_heads 2"),
                            ({"src_vocab_size": 3}, "src_vocab_size 3 but the checkpoint's source vocabulary has"),
                            ({"d_ff": 10**12}, "more than the 1000000000 allowed")):
        config = {**json.loads(metadata["model_config"]), **change}
        save_file(tensors, str(tmp_path / "bad.safetensors"), metadata={**metadata, "model_config": json.dumps(config)})
        code, _, err = run(["translate", "--checkpoint", tmp_path / "bad.safetensors", "we sleep"], capsys)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
