"""The pictures of a finished run: its training curves, and the cross-attention of one sentence.

plots draws from plain arrays and never imports the model; this module is the part that reads the
run's metrics log and runs the model once to get the attention weights to draw.
"""
from __future__ import annotations

from pathlib import Path

import minigrad

from . import plots
from .corpus import Corpus, encode_sources
from .run_log import read_records
from .scoring import translate_ids


def draw_pictures(run_dir: Path, model, corpus: Corpus, device, sentence: str | None = None):
    """curves.png and attention.png in the run directory, for `sentence` or else the first held-out
    (or training) source; only a note when matplotlib is not installed."""
    if not plots.available():
        print("note: matplotlib is not installed, so no plots were drawn (pip install \"minigrad[plots]\")")
        return
    curves = plots.training_curves(read_records(run_dir), run_dir / "curves.png")
    sentence = sentence or (corpus.valid_pairs[0][0] if corpus.valid_pairs else corpus.train_pairs[0][0])
    source_ids = encode_sources([sentence], corpus.src_vocab, corpus.tokenizer, model.max_len, too_long="cut")[0]
    output_ids = translate_ids(model, [source_ids], corpus.tgt_vocab, device)[0]
    with minigrad.no_grad():
        src = minigrad.tensor([source_ids], device=device)
        tgt_in = minigrad.tensor([[corpus.tgt_vocab.bos_id] + output_ids], device=device)
        _, attention = model(src, tgt_in, return_attention=True)
    weights = attention["cross"][-1].numpy()[0]       # last decoder layer: (heads, T, S)
    source_tokens = corpus.src_vocab.decode(source_ids, strip_specials=False)
    output_tokens = corpus.tgt_vocab.decode(output_ids, strip_specials=False) + ["<eos>"]
    heatmap = plots.cross_attention(weights, source_tokens, output_tokens, run_dir / "attention.png",
                                    title=f"cross-attention, last decoder layer: \"{sentence}\"")
    print(f"plots: {curves}, {heatmap}")
