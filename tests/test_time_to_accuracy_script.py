"""benchmarks/morph_pairs.py and benchmarks/time_to_accuracy.py work (not how fast: that is the benchmark's).

The data: deterministic, every held-out stem and suffix seen in training, many held-out words not.
The trainers: both write one JSON record per mark; the PyTorch twin, given our initial weights and
the same batches, makes the same updates as train.py's train_step (float64, no dropout).
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import morph_pairs  # noqa: E402

TINY = ["--valid-size", "40", "--eval-sentences", "10", "--marks", "0.5,1", "--d-model", "16", "--heads", "2",
        "--d-ff", "32", "--layers", "1", "--batch-size", "8"]
RECORD_KEYS = {"trainer", "tokenizer", "vocab", "train_pairs", "eval_sentences", "parameters", "mark", "seconds",
               "steps", "epochs", "exact_match", "token_accuracy", "bleu", "bleu_tokenize", "eval_seconds",
               "unseen_sentences", "exact_match_unseen"}


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("morph") / "pairs.tsv"
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "morph_pairs.py"), "--out", str(path),
                             "--pairs", "400", "--valid-size", "40"], capture_output=True, text=True, check=True)
    assert "held_out_sentences_with_an_unseen_word" in result.stdout
    return path


def test_the_pairs_are_deterministic_and_need_pieces_to_generalise():
    pairs, morphemes = morph_pairs.make_pairs(3000, seed=0)
    assert pairs == morph_pairs.make_pairs(3000, seed=0)[0] and pairs != morph_pairs.make_pairs(3000, seed=1)[0]
    assert len({source for source, _ in pairs}) == 3000 and all(source in morphemes for source, _ in pairs)
    numbers = morph_pairs.stats(pairs, morphemes, valid_size=300, split_seed=0)
    assert numbers["held_out_morphemes_unseen"] == 0             # every stem and suffix was seen ...
    assert numbers["held_out_sentences_with_an_unseen_word"] > 0.3   # ... but not every word
    assert numbers["avg_source_word_chars"] > 8
    assert all(2 <= len(source.split()) <= 7 and 3 <= len(target.split()) <= 9 for source, target in pairs)


def test_a_plural_possessed_noun_translates_piece_by_piece():
    import random
    lexicon = morph_pairs.Lexicon(random.Random(0))
    target_of = dict(lexicon.entries["noun"])
    rng = random.Random(3)
    checked = 0
    for _ in range(3000):
        source, target, used = morph_pairs.noun_phrase(lexicon, "abl", rng)
        if used[1:4] == [("number", "pl"), ("possessor", "1pl"), ("case", "abl")]:   # not a compound
            stem = used[0][1]
            assert source[-1] == stem + "lar" + "imiz" + "dan"
            assert target[:2] == ["de", target_of[stem] + "os" + "nos"]
            checked += 1
    assert checked >= 5


def run_script(*arguments):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "time_to_accuracy.py"), *arguments],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")], result.stderr


@pytest.mark.parametrize("tokenizer", ["word", "char", "bpe"])
def test_minigrad_writes_one_record_per_mark(pairs_file, tmp_path, tokenizer):
    extra = ["--vocab-size", "120"] if tokenizer == "bpe" else []
    out = tmp_path / "records.jsonl"
    records, _ = run_script("--data", str(pairs_file), "--tokenizer", tokenizer, *TINY, *extra, "--out", str(out))
    assert [record["mark"] for record in records] == [0.5, 1.0]
    assert [json.loads(line) for line in out.read_text().splitlines()] == records
    for record in records:
        assert set(record) == RECORD_KEYS
        assert record["trainer"] == "minigrad" and record["tokenizer"] == tokenizer
        assert record["seconds"] >= record["mark"] and record["steps"] >= 1 and record["eval_sentences"] == 10
        assert 0 <= record["exact_match"] <= 1 and 0 <= record["token_accuracy"] <= 1
        assert 0 < record["unseen_sentences"] <= 10 and 0 <= record["exact_match_unseen"] <= 1
    assert records[1]["steps"] > records[0]["steps"]
    if tokenizer == "bpe":
        assert records[0]["vocab"] == [120, 120]


def test_side_by_side_runs_both_trainers(pairs_file):
    pytest.importorskip("torch")
    records, table = run_script("--data", str(pairs_file), *TINY, "--side-by-side")
    assert sorted((record["mark"], record["trainer"]) for record in records) == [
        (0.5, "minigrad"), (0.5, "torch"), (1.0, "minigrad"), (1.0, "torch")]
    by_trainer = {record["trainer"]: record for record in records}
    assert by_trainer["minigrad"]["parameters"] == by_trainer["torch"]["parameters"]
    assert "| word | minigrad |" in table and "| word | torch |" in table


def test_bad_marks_are_one_line_errors(pairs_file):
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "time_to_accuracy.py"), "--data",
                             str(pairs_file), "--marks", "60,30"], capture_output=True, text=True)
    assert result.returncode == 2 and "increasing positive seconds" in result.stderr


def test_the_torch_twin_makes_train_steps_updates(pairs_file):
    """Same initial weights, same batches, no dropout, float64: the same losses and weights after 12 updates."""
    torch = pytest.importorskip("torch")
    import minigrad
    import time_to_accuracy as tta
    import train
    from torch_translator import TorchTrainer, TorchTranslator
    from transformer.batching import BatchStream
    from transformer.corpus import prepare_corpus
    from transformer.divergence import DivergenceGuard
    from transformer.model import Transformer
    from transformer.optimizer import build_optimizer

    args = tta.build_parser().parse_args(["--data", str(pairs_file), *TINY, "--layers", "2", "--dropout", "0",
                                          "--warmup", "5"])
    settings = tta.run_settings(args)
    minigrad.manual_seed(0)
    corpus = prepare_corpus(settings)
    model = Transformer(**train.model_config(settings, corpus))
    model.to(dtype=np.float64)
    twin = TorchTranslator(model.config, model.state_dict()).double()
    twin_trainer = TorchTrainer(twin, settings)
    optimizer, schedule = build_optimizer(model, settings, total_steps=12)
    ours, theirs = BatchStream(corpus, 8, 0), BatchStream(corpus, 8, 0)
    guard = DivergenceGuard()
    for step in range(12):
        result = train.train_step(model, ours.next(), optimizer, schedule, settings, "cpu", guard, step)
        assert twin_trainer.step(theirs.next()) == pytest.approx(float(result["loss"].item()), rel=1e-10)
    state, twin_state = model.state_dict(), twin.our_state(model.config)
    assert list(twin_state) == list(state)
    # atol: the key projection's bias gets only round-off gradients (softmax ignores a shift shared by all
    # keys), which Adam turns into steps of ~1e-10 that differ between the two; every other weight agrees closer.
    for name in state:
        np.testing.assert_allclose(twin_state[name], state[name].numpy(), rtol=1e-8, atol=1e-9, err_msg=name)
    assert torch.get_default_dtype() == torch.float32
