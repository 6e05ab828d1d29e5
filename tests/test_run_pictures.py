"""A run's pictures (transformer/run_pictures.py): curves and cross-attention drawn with matplotlib,
or a note when it is not installed."""
import pytest

import minigrad
from transformer import Transformer, plots
from transformer.corpus import Corpus
from transformer.data import Vocab
from transformer.run_log import append_records
from transformer.run_pictures import draw_pictures


def tiny(tmp_path):
    vocab = Vocab(["a", "b", "c"])
    corpus = Corpus([("a b", "b a")], [("c a", "a c")], vocab, vocab, [[4, 5]], [[5, 4]], "word")
    minigrad.manual_seed(0)
    model = Transformer(len(vocab), len(vocab), d_model=8, n_heads=2, d_ff=16, n_encoder_layers=1,
                        n_decoder_layers=1, max_len=8)
    append_records(tmp_path, [{"kind": "train", "step": s, "loss": 2.0 / s, "nll": 1.0 / s, "token_accuracy": 0.1 * s}
                              for s in (1, 2)])
    return model, corpus


def test_without_matplotlib_only_a_note(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(plots, "available", lambda: False)
    draw_pictures(tmp_path, *tiny(tmp_path), "cpu")
    assert "matplotlib is not installed" in capsys.readouterr().out
    assert not (tmp_path / "curves.png").exists() and not (tmp_path / "attention.png").exists()


def test_curves_and_attention_are_drawn(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    draw_pictures(tmp_path, *tiny(tmp_path), "cpu", sentence="b b a")
    assert (tmp_path / "curves.png").stat().st_size > 1000 and (tmp_path / "attention.png").stat().st_size > 1000
    assert f"plots: {tmp_path / 'curves.png'}, {tmp_path / 'attention.png'}" in capsys.readouterr().out
