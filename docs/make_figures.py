#!/usr/bin/env python
"""Draw every step of the Transformer from a trained toy translator: the figures of docs/transformer.md.

    python docs/make_figures.py --checkpoint runs/toy                    # a run of `python train.py`
    python docs/make_figures.py --checkpoint runs/toy --sentence "the big dog sees a cat"
    python docs/make_figures.py                # trains one first (train.py's defaults, into runs/figures)
    python docs/make_figures.py --steps 300 --d-model 64    # other flags go to train.py when it trains

Each figure is read off the model as it runs, never recomputed by a copy of it here: the attention
weights the model returns (`return_attention=True`), forward hooks on its sub-modules
(`Module.register_forward_hook`) for what flows between them, the sub-modules' own methods
(`project_self`, `LayerNorm`) and minigrad.functional (`F.split_heads`, `F.masked_softmax`) to take one
head apart, `minigrad.viz` for the backward graph, and `Tensor.register_hook` for the gradients. Where
a figure takes something apart, the script checks that the parts give back what the model computed
(and stops with an error if not). NumPy only arranges the numbers for plotting.

Needs matplotlib (pip install "minigrad[plots]"); the backward graph also needs Graphviz's `dot` program
(without it the graph's DOT text is written instead). From a checkpoint, most of the time goes to the
--grad-steps training steps of the gradient-norm figure.
"""
from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as train.py: small matrices, a shared machine
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import minigrad  # noqa: E402
import minigrad.functional as F  # noqa: E402
import train  # noqa: E402
from transformer import plots, toy_tasks  # noqa: E402
from transformer.batching import BatchStream  # noqa: E402
from transformer.checkpoint import load_checkpoint, restore_model  # noqa: E402
from transformer.corpus import encode_sources, prepare_corpus  # noqa: E402
from transformer.data import SPECIALS, DataError, tokenize  # noqa: E402
from transformer.decoding import greedy_decode  # noqa: E402
from transformer.divergence import DivergenceGuard  # noqa: E402
from transformer.errors import UsageError  # noqa: E402
from transformer.model import Transformer  # noqa: E402
from transformer.optimizer import build_optimizer  # noqa: E402

DEVICE = "cpu"
FIGURES = ROOT / "docs" / "figures"
FIGURE_NAMES = (
    "01_token_embeddings.png", "01_vocabulary_pca.png", "02_positional_encoding.png", "03_query_key_value.png",
    "04_scores_scale_mask_softmax.png", "05_weighted_sum_of_values.png", "06_heads_concat_project.png",
    "07_residual_layernorm.png", "08_feed_forward_relu.png", "09_decoder_self_attention.png",
    "09_cross_attention.png", "10_generator_probabilities.png", "11_attention_backward_graph.png",
    "12_gradient_norms.png",
)
DPI = 90
DIVERGING = "RdBu_r"


# -- command line ------------------------------------------------------------------------------

def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="docs/make_figures.py", description=__doc__.split("\n\n")[0],
        epilog="Any other flag is passed to train.py when no --checkpoint is given, e.g. --steps 300.")
    parser.add_argument("--checkpoint", metavar="PATH", help="a train.py checkpoint or run directory "
                                                             "(default: train one into --run-dir)")
    parser.add_argument("--run-dir", default="runs/figures", help="where to train when there is no --checkpoint")
    parser.add_argument("--sentence", metavar="TEXT", help="source sentence (default: a held-out one)")
    parser.add_argument("--figures", default=str(FIGURES), metavar="DIR", help="output folder (default: docs/figures)")
    parser.add_argument("--head", type=int, default=0, help="the head taken apart in figures 3-5 (default: 0)")
    parser.add_argument("--grad-steps", type=int, default=200,
                        help="training steps recorded for the gradient-norm figure (default: 200)")
    return parser.parse_known_args(argv)


# -- running the model once, with hooks ----------------------------------------------------------

def run_with_hooks(model, src, tgt_in):
    """The model's forward on one sentence pair, every sub-module's inputs and outputs recorded by a forward
    hook: ({module name: [(args, output) per call]}, logits, attention weights)."""
    calls = {}

    def recorder(name):
        def hook(module, args, output):
            calls.setdefault(name, []).append((args, output))
        return hook

    handles = [module.register_forward_hook(recorder(name)) for name, module in model.named_modules() if name]
    try:
        with minigrad.no_grad():
            logits, attention = model(src, tgt_in, return_attention=True)
    finally:
        for handle in handles:
            handle.remove()
    return calls, logits, attention


def inputs_of(calls, name, call=0):
    return calls[name][call][0]


def output_of(calls, name, call=0):
    output = calls[name][call][1]
    return output[0] if isinstance(output, tuple) else output  # attention and layers: (value, weights...)


def host(tensor):
    """Batch row 0 as a float64 NumPy array, for plotting."""
    return tensor.detach().numpy()[0].astype("float64")


def check(ours, models, what, tolerance=1e-4):
    """Stop if what the script took apart does not give back what the model computed."""
    ours = ours.detach().numpy() if hasattr(ours, "numpy") else np.asarray(ours)
    models = models.detach().numpy() if hasattr(models, "numpy") else np.asarray(models)
    difference = float(np.max(np.abs(ours.astype("float64") - models.astype("float64")), initial=0.0))
    if ours.shape != models.shape or difference > tolerance:
        raise RuntimeError(f"{what}: recomputed {ours.shape} differs from the model's {models.shape} "
                           f"by {difference:.3g}")
    return difference


def one_head(attn, args, head, cross=False):
    """q, k, v (each (T or S, d_k)) and the scores' pieces of head `head`, from a hooked attention input:
    the module's own projections, F.split_heads and F.masked_softmax."""
    query, key_value, mask = args[0], args[1], args[2]
    with minigrad.no_grad():
        if cross:
            (q,), (k, v) = (F.split_heads(attn.project_query(query), 1, attn.n_heads),
                            F.split_heads(attn.project_key_value(key_value), 2, attn.n_heads))
        else:
            q, k, v = F.split_heads(attn.project_self(query), 3, attn.n_heads)
        scale = 1.0 / math.sqrt(attn.d_head)
        raw = q @ k.mT                                   # (B, H, T, S)
        weights = F.masked_softmax(raw, mask, scale)     # what the model computes for every head
    blocked = np.zeros(raw.shape[-2:], dtype=bool) if mask is None else \
        np.broadcast_to(mask.numpy(), raw.shape)[0, head]
    return dict(q=host(q)[head], k=host(k)[head], v=host(v)[head], raw=host(raw)[head],
                scaled=host(raw)[head] * scale, scale=scale, blocked=blocked, weights=weights, tensors=(q, k, v))


# -- the figures -------------------------------------------------------------------------------

class Tour:
    """One sentence through the model: its tokens, the hooked forward, and where the figures go."""

    def __init__(self, model, src_vocab, tgt_vocab, sentence, tokenizer, reference, out_dir, head):
        self.model, self.src_vocab, self.tgt_vocab, self.out_dir = model, src_vocab, tgt_vocab, Path(out_dir)
        self.sentence, self.reference, self.head = sentence, reference, head
        self.source_ids = encode_sources([sentence], src_vocab, tokenizer, model.max_len, too_long="cut")[0]
        self.src = minigrad.tensor([self.source_ids])
        max_len = min(model.max_len - 1, 2 * len(self.source_ids) + 10)
        output_ids = greedy_decode(model, self.src, max_len, tgt_vocab.bos_id, tgt_vocab.eos_id)[0]
        # The word chosen at each step; the decoder reads <bos> and the words chosen before.
        self.chosen = output_ids + [tgt_vocab.eos_id] if len(output_ids) < max_len else output_ids
        self.tgt_in = minigrad.tensor([[tgt_vocab.bos_id] + self.chosen[:-1]])
        self.source_tokens = src_vocab.decode(self.source_ids, strip_specials=False)
        self.input_tokens = tgt_vocab.decode(self.tgt_in.tolist()[0], strip_specials=False)
        self.chosen_tokens = tgt_vocab.decode(self.chosen, strip_specials=False)
        self.calls, self.logits, self.attention = run_with_hooks(model, self.src, self.tgt_in)
        self.written, self.checks = [], []

    def quoted(self):
        return f"\"{self.sentence}\""

    def save(self, figure, name):
        path = plots.save(figure, self.out_dir / name, dpi=DPI)
        self.written.append(path)
        return path

    def check(self, ours, models, what):
        self.checks.append((what, check(ours, models, what)))

    # 1. embeddings
    def token_embeddings(self):
        plt = plots.pyplot()
        embedded = output_of(self.calls, "src_embed")               # ScaledEmbedding: table rows * sqrt(D)
        with minigrad.no_grad():
            self.check(embedded, self.model.src_embed.weight[self.src] * self.model.src_embed.scale,
                       "token embeddings = rows of the table * sqrt(d_model)")
        figure, axis = plt.subplots(figsize=(10, 0.32 * len(self.source_tokens) + 1.6), layout="constrained")
        values = host(embedded)
        limit = np.abs(values).max()
        plots.heatmap(axis, values, None, self.source_tokens, f"token embeddings of {self.quoted()}: one row of "
                      f"the learned table per token, times sqrt(d_model) = {self.model.src_embed.scale:.1f}",
                      colorbar="value", cmap=DIVERGING, vmin=-limit, vmax=limit,
                      xlabel="embedding dimension (d_model)", ylabel="source token")
        return self.save(figure, "01_token_embeddings.png")

    def vocabulary_pca(self):
        plt = plots.pyplot()
        figure, axes = plt.subplots(1, 2, figsize=(15, 7), layout="constrained")
        for axis, side, vocab in ((axes[0], "source", self.src_vocab), (axes[1], "target", self.tgt_vocab)):
            embed = self.model.src_embed if side == "source" else self.model.tgt_embed
            table = embed.weight.detach().numpy().astype("float64")[len(SPECIALS):]    # without <pad> etc.
            words = vocab.to_list()[len(SPECIALS):]
            centered = table - table.mean(0)
            _, singular, directions = np.linalg.svd(centered, full_matrices=False)
            points = centered @ directions[:2].T
            share = singular ** 2 / (singular ** 2).sum()
            classes = [word_class(word, side) for word in words]
            for name, colour in WORD_CLASS_COLOURS.items():
                chosen = [i for i, c in enumerate(classes) if c == name]
                if chosen:
                    axis.scatter(points[chosen, 0], points[chosen, 1], s=14, color=colour, label=name)
            sentence_words = set(self.source_tokens if side == "source" else self.chosen_tokens)
            for (x, y), word in zip(points, words):
                bold = word in sentence_words
                if side == "target" and not bold:
                    continue
                axis.annotate(word, (x, y), fontsize=7.5 if bold else 6, alpha=1.0 if bold else 0.6,
                              fontweight="bold" if bold else "normal", xytext=(2, 2), textcoords="offset points")
            axis.set(xlabel=f"first principal direction ({100 * share[0]:.0f}% of the variance)",
                     ylabel=f"second principal direction ({100 * share[1]:.0f}%)")
            axis.set_title(f"{side} vocabulary: the learned embedding table ({len(words)} x {table.shape[1]}) "
                           "projected on its two main directions (SVD)\nbold: the words of this sentence"
                           + ("" if side == "source" else "'s translation (the only ones named)"), fontsize=9)
            axis.legend(fontsize=8, loc="best")
        return self.save(figure, "01_vocabulary_pca.png")

    # 2. positions
    def positional_encoding(self):
        plt = plots.pyplot()
        positional = self.model.positional
        embedded, = inputs_of(self.calls, "positional")[:1]          # call 0: the source side
        summed = output_of(self.calls, "positional")
        length = embedded.shape[1]
        self.check(summed, embedded + positional.table[:length], "embedding + position = PositionalEncoding output")
        table = positional.table.numpy()[:min(positional.max_len, 100)].astype("float64")
        figure = plt.figure(figsize=(15, 7), layout="constrained")
        grid = figure.add_gridspec(2, 3, height_ratios=[1.4, 1])
        plots.heatmap(figure.add_subplot(grid[0, :]), table, None, None,
                      f"the sinusoidal table, PositionalEncoding.table (a buffer, not learned): "
                      f"sin(pos / 10000^(2i/d)) in even columns, cos in odd ones; rows 0-{len(table) - 1} of "
                      f"{positional.max_len}", colorbar="value", cmap=DIVERGING, vmin=-1, vmax=1,
                      xlabel="dimension", ylabel="position")
        panels = (("token embedding (x sqrt(d_model))", host(embedded)),
                  (f"+ positions 0-{length - 1} (rows of the table; same colour scale)", table[:length]),
                  ("= what the first encoder layer reads", host(summed)))
        limit = max(np.abs(values).max() for _, values in panels)
        for column, (title, values) in enumerate(panels):
            plots.heatmap(figure.add_subplot(grid[1, column]), values, None, self.source_tokens, title,
                          colorbar="value" if column == 2 else None, cmap=DIVERGING, vmin=-limit, vmax=limit,
                          xlabel="dimension", ylabel="source token" if column == 0 else None)
        figure.suptitle(f"positions: {self.quoted()} gets the rows of its positions added")
        return self.save(figure, "02_positional_encoding.png")

    # 3-5. one head of the first encoder layer
    def encoder_head(self, calls=None, layer=0):
        calls = calls or self.calls
        attn = self.model.encoder.layers[layer].self_attn
        head = one_head(attn, inputs_of(calls, f"encoder.layers.{layer}.self_attn"), self.head)
        return attn, head

    def query_key_value(self):
        plt = plots.pyplot()
        attn, head = self.encoder_head()
        self.check(head["weights"], self.attention["encoder"][0],
                   "softmax(q k^T / sqrt(d_k)) from project_self + split_heads = the weights the model returned")
        figure, axes = plt.subplots(1, 3, figsize=(15, 0.3 * len(self.source_tokens) + 2.2), layout="constrained")
        start = self.head * attn.d_head
        for axis, (letter, block) in zip(axes, (("Q", 0), ("K", 1), ("V", 2))):
            rows = f"{block * attn.d_model + start}-{block * attn.d_model + start + attn.d_head - 1}"
            values = head[letter.lower()]
            limit = np.abs(values).max()
            plots.heatmap(axis, values, None, self.source_tokens if letter == "Q" else None,
                          f"{letter}: rows {rows} of in_proj_weight applied to each token", colorbar="value",
                          cmap=DIVERGING, vmin=-limit, vmax=limit, xlabel=f"head dimension (d_k = {attn.d_head})",
                          ylabel="source token" if letter == "Q" else None)
            if letter != "Q":
                axis.set_yticks(range(len(self.source_tokens)), labels=self.source_tokens, fontsize=8)
        figure.suptitle(f"encoder layer 0, head {self.head} of {attn.n_heads}: queries, keys and values of "
                        f"{self.quoted()} (project_self, then F.split_heads)")
        return self.save(figure, "03_query_key_value.png")

    def scores_scale_mask_softmax(self):
        plt = plots.pyplot()
        # In a batch a sentence is padded to the longest one: run it with two <pad> after it to show the mask.
        padded = minigrad.tensor([self.source_ids + [self.model.pad_id] * 2])
        padded_calls, _, padded_attention = run_with_hooks(self.model, padded, self.tgt_in)
        _, encoder = self.encoder_head(padded_calls)
        self.check(encoder["weights"], padded_attention["encoder"][0], "encoder weights, padded source")
        decoder_attn = self.model.decoder.layers[0].self_attn
        decoder = one_head(decoder_attn, inputs_of(self.calls, "decoder.layers.0.self_attn"), self.head)
        self.check(decoder["weights"], self.attention["decoder"][0], "decoder self-attention weights, layer 0")
        source_tokens = self.source_tokens + ["<pad>"] * 2
        rows = ((f"encoder layer 0, head {self.head}: {self.quoted()} with 2 <pad> after it (as in a batch)",
                 encoder, source_tokens, source_tokens, "padding: no query may look at a <pad> key"),
                (f"decoder layer 0, head {self.head}: the translation so far", decoder, self.input_tokens,
                 self.input_tokens, "causal: no query may look at a later word"))
        size = max(len(source_tokens), len(self.input_tokens))
        figure = plt.figure(figsize=(20, 0.55 * size + 3.5), layout="constrained")
        for part, (name, head, queries, keys, mask_note) in zip(figure.subfigures(2, 1), rows):
            part.suptitle(name, fontsize=10)
            axis_row = part.subplots(1, 4)
            raw_limit = np.abs(head["raw"]).max()
            plots.heatmap(axis_row[0], head["raw"], keys, queries, "raw scores q . k", colorbar="score",
                          cmap=DIVERGING, vmin=-raw_limit, vmax=raw_limit, xlabel="key", ylabel="query")
            scaled_limit = raw_limit * head["scale"]
            plots.heatmap(axis_row[1], head["scaled"], keys, queries,
                          f"scaled: x 1/sqrt(d_k) = {head['scale']:.3f} (same picture, smaller numbers)",
                          colorbar="score", cmap=DIVERGING, vmin=-scaled_limit, vmax=scaled_limit, xlabel="key")
            plots.heatmap(axis_row[2], head["blocked"].astype(float), keys, queries,
                          f"mask, black = blocked (set to -inf)\n{mask_note}", cmap="Greys", vmin=0, vmax=1,
                          xlabel="key")
            weights = host(head["weights"])[self.head]
            plots.heatmap(axis_row[3], weights, keys, queries, "softmax over each row: the attention weights",
                          colorbar="weight (rows sum to 1)", vmin=0, vmax=1, xlabel="key")
        figure.suptitle("from scores to weights: scale, mask, softmax (F.masked_softmax)", fontweight="bold")
        return self.save(figure, "04_scores_scale_mask_softmax.png")

    def weighted_sum_of_values(self):
        plt = plots.pyplot()
        attn, head = self.encoder_head()
        weights = host(head["weights"])[self.head]                               # (S, S)
        spread = -(weights * np.log(np.where(weights > 0, weights, 1.0))).sum(1)
        query = int(np.argmax(spread))                                           # the least one-sided row
        _, _, v = head["tensors"]
        with minigrad.no_grad():
            contributions = head["weights"][0, self.head, query].unsqueeze(-1) * v[0, self.head]   # (S, d_k)
            total = contributions.sum(0)
        context = inputs_of(self.calls, "encoder.layers.0.self_attn.out_proj")[0]   # heads merged: (B, S, D)
        start = self.head * attn.d_head
        self.check(total, context[0, query, start:start + attn.d_head],
                   "sum of weight * value = the head's slice of the model's context")
        rows = np.vstack([contributions.numpy(), total.numpy()[None]]).astype("float64")
        labels = [f"{w:.2f} x v({token})" for w, token in zip(weights[query], self.source_tokens)]
        labels.append(f"= output for '{self.source_tokens[query]}'")
        figure, (bars, axis) = plt.subplots(1, 2, figsize=(14, 0.34 * len(labels) + 2), layout="constrained",
                                            gridspec_kw={"width_ratios": [1, 4]})
        bars.barh(range(len(self.source_tokens)), weights[query], color="tab:blue")
        bars.set(ylim=(len(labels) - 0.5, -0.5), xlim=(0, 1), xlabel="attention weight",
                 title=f"weights of query '{self.source_tokens[query]}'")
        bars.set_yticks(range(len(self.source_tokens)), labels=self.source_tokens, fontsize=8)
        limit = np.abs(rows).max()
        plots.heatmap(axis, rows, None, labels, "each value vector times its weight; the last row is their sum, "
                      "which the model hands on (checked against its own)", colorbar="value", cmap=DIVERGING,
                      vmin=-limit, vmax=limit, xlabel=f"head dimension (d_k = {attn.d_head})")
        axis.axhline(len(labels) - 1.5, color="black", linewidth=1.5)
        figure.suptitle(f"encoder layer 0, head {self.head}: the output for '{self.source_tokens[query]}' is a "
                        f"weighted sum of the values (the query whose weights are most spread out)")
        return self.save(figure, "05_weighted_sum_of_values.png")

    # 6. all heads
    def heads_concat_project(self):
        plt = plots.pyplot()
        attn = self.model.encoder.layers[0].self_attn
        weights = host(self.attention["encoder"][0])                  # (H, S, S)
        merged = host(inputs_of(self.calls, "encoder.layers.0.self_attn.out_proj")[0])
        projected = host(output_of(self.calls, "encoder.layers.0.self_attn.out_proj"))
        n_heads, tokens = attn.n_heads, self.source_tokens
        figure = plt.figure(figsize=(4 * n_heads, 0.5 * len(tokens) + 5), layout="constrained")
        grid = figure.add_gridspec(2, max(n_heads, 2) * 2)
        for h in range(n_heads):
            plots.heatmap(figure.add_subplot(grid[0, 2 * h:2 * h + 2]), weights[h], tokens, tokens,
                          f"head {h}: its attention weights", vmin=0, vmax=1, xlabel="key",
                          ylabel="query" if h == 0 else None, colorbar="weight" if h == n_heads - 1 else None)
        half = max(n_heads, 2)
        limit = max(np.abs(merged).max(), np.abs(projected).max())
        concat_axis = figure.add_subplot(grid[1, :half])
        plots.heatmap(concat_axis, merged, None, tokens,
                      f"concatenated: {n_heads} heads x d_k = {attn.d_head} side by side (input of out_proj)",
                      cmap=DIVERGING, vmin=-limit, vmax=limit, xlabel="dimension", ylabel="source token")
        for h in range(1, n_heads):
            concat_axis.axvline(h * attn.d_head - 0.5, color="black", linewidth=1)
        top = concat_axis.secondary_xaxis("top")
        top.set_xticks([(h + 0.5) * attn.d_head - 0.5 for h in range(n_heads)],
                       labels=[f"head {h}" for h in range(n_heads)], fontsize=8)
        plots.heatmap(figure.add_subplot(grid[1, half:]), projected, None, tokens,
                      "projected: out_proj mixes the heads (W^O, d_model x d_model)", colorbar="value",
                      cmap=DIVERGING, vmin=-limit, vmax=limit, xlabel="dimension")
        figure.suptitle(f"encoder layer 0: every head of {self.quoted()}, concatenated and projected")
        return self.save(figure, "06_heads_concat_project.png")

    # 7. residual stream and LayerNorm
    def layer_norm_points(self):
        """[(side, name, before, after)] for every LayerNorm of both stacks, from hooks. Post-LN layers call
        their norms inside F.dropout_add_layer_norm (no module call to hook), so there `before` is the
        hooked residual plus the hooked sub-layer output, and the layer's own norm applied to it must give the
        next hooked input."""
        points, calls = [], self.calls
        for side, sublayers in (("encoder", ("self_attn", "feed_forward")),
                                ("decoder", ("self_attn", "multihead_attn", "feed_forward"))):
            stack = getattr(self.model, side)
            for index, layer in enumerate(stack.layers):
                prefix = f"{side}.layers.{index}"
                for number, sublayer in enumerate(sublayers, 1):
                    label = f"layer {index}, norm{number}: after {SUBLAYER_NAMES[sublayer]}"
                    norm_name = f"{prefix}.norm{number}"
                    if layer.norm_first:
                        label = f"layer {index}, norm{number}: before {SUBLAYER_NAMES[sublayer]}"
                        points.append((side, label, inputs_of(calls, norm_name)[0], output_of(calls, norm_name)))
                        continue
                    residual = inputs_of(calls, f"{prefix}.{sublayer}")[0]
                    before = residual + output_of(calls, f"{prefix}.{sublayer}")   # eval: dropout is identity
                    with minigrad.no_grad():
                        after = getattr(layer, f"norm{number}")(before)
                    following = (inputs_of(calls, f"{prefix}.{sublayers[number]}")[0] if number < len(sublayers)
                                 else output_of(calls, prefix))
                    self.check(after, following, f"{norm_name}(residual + sub-layer) = the next hooked input")
                    points.append((side, label, before, after))
            if stack.norm is not None:
                points.append((side, "final norm", inputs_of(calls, f"{side}.norm")[0],
                               output_of(calls, f"{side}.norm")))
        return points

    def residual_layernorm(self):
        plt = plots.pyplot()
        from matplotlib.colors import LogNorm
        points = self.layer_norm_points()
        sides = (("encoder", self.source_tokens), ("decoder", self.input_tokens))
        counts = [sum(p[0] == side for p in points) for side, _ in sides]
        figure = plt.figure(figsize=(20, 0.55 * sum(counts) + 4.5), layout="constrained")
        for part, (side, tokens) in zip(figure.subfigures(2, 1, height_ratios=[c + 2.5 for c in counts]), sides):
            part.suptitle(f"{side}: each LayerNorm's input (before) and output (after)", fontsize=10)
            axes = part.subplots(1, 4)
            mine = [p for p in points if p[0] == side]
            labels = [p[1] for p in mine]
            stats = {}
            for when, column in (("before", 2), ("after", 3)):
                values = np.stack([host(p[column]) for p in mine])            # (norms, T, D)
                stats[when] = (values.mean(-1), values.var(-1))
            mean_limit = max(np.abs(stats[w][0]).max() for w in stats)
            variance_norm = LogNorm(
                vmin=max(min(stats[w][1].min() for w in stats), 1e-3), vmax=max(stats[w][1].max() for w in stats))
            for column, (when, statistic) in enumerate((("before", 0), ("after", 0), ("before", 1), ("after", 1))):
                values, axis = stats[when][statistic], axes[column]
                title = f"{'mean' if statistic == 0 else 'variance'} of each token's vector, {when} LayerNorm"
                if statistic == 0:
                    image = plots.heatmap(axis, values, tokens, labels, title, cmap=DIVERGING,
                                          colorbar="mean" if column == 1 else None, vmin=-mean_limit,
                                          vmax=mean_limit, xlabel=f"{side} token")
                else:
                    image = plots.heatmap(axis, values, tokens, labels, title, cmap="magma", norm=variance_norm,
                                          colorbar="variance (log scale)" if column == 3 else None,
                                          xlabel=f"{side} token")
                if column in (1, 3):
                    axis.set_yticks([])
                annotate(axis, values, image)
        figure.suptitle(f"the residual stream of {self.quoted()}: mean and variance over the {self.model.d_model} "
                        "numbers of each token, before and after every LayerNorm", fontweight="bold")
        return self.save(figure, "07_residual_layernorm.png")

    # 8. feed-forward
    def feed_forward_relu(self):
        plt = plots.pyplot()
        shares = {}
        for side, tokens in (("encoder", self.source_tokens), ("decoder", self.input_tokens)):
            for index in range(len(getattr(self.model, side).layers)):
                name = f"{side}.layers.{index}.feed_forward"
                pre = output_of(self.calls, f"{name}.linear1")
                hidden = inputs_of(self.calls, f"{name}.linear2")[0]      # after the activation (and dropout)
                if self.model.config["activation"] == "relu":
                    self.check(F.relu(pre), hidden, f"{name}: linear2's input = relu(linear1's output)")
                shares[(side, index)] = (host(hidden) == 0).mean(1)
                if (side, index) == ("encoder", 0):
                    first = host(hidden)
        figure = plt.figure(figsize=(16, 8), layout="constrained")
        grid = figure.add_gridspec(2, 2, height_ratios=[1.2, 1])
        axis = figure.add_subplot(grid[0, :])
        limit = first.max()
        colours = plt.colormaps["viridis"].copy()
        colours.set_under("white")
        plots.heatmap(axis, first, None, self.source_tokens,
                      f"encoder layer 0: relu(linear1(x)), {first.shape[1]} hidden units per token; white = exactly 0",
                      colorbar="activation (0 drawn white)", cmap=colours, vmin=1e-9, vmax=limit,
                      xlabel="hidden unit (d_ff)", ylabel="source token")
        for column, (side, tokens) in enumerate((("encoder", self.source_tokens), ("decoder", self.input_tokens))):
            axis = figure.add_subplot(grid[1, column])
            layers = [index for s, index in shares if s == side]
            width = 0.8 / len(layers)
            for index in layers:
                axis.bar(np.arange(len(tokens)) + (index - (len(layers) - 1) / 2) * width, shares[(side, index)],
                         width, label=f"layer {index}")
            axis.set_xticks(range(len(tokens)), labels=tokens, rotation=90, fontsize=8)
            axis.set(ylim=(0, 1.18), ylabel="share of hidden units that are 0", xlabel=f"{side} token",
                     title=f"{side}: the share of ReLU units that are off, per token and layer")
            axis.set_yticks(np.linspace(0, 1, 6))
            axis.legend(fontsize=8, loc="upper center", ncols=len(layers))
        figure.suptitle(f"the feed-forward block of {self.quoted()}: linear1, ReLU, linear2 (hidden = "
                        f"linear2's input, read by a hook)")
        return self.save(figure, "08_feed_forward_relu.png")

    # 9. decoder self-attention and cross-attention
    def decoder_attention(self):
        last = len(self.model.decoder.layers) - 1
        layer = self.model.decoder.layers[last]
        cross = one_head(layer.multihead_attn, inputs_of(self.calls, f"decoder.layers.{last}.multihead_attn"),
                         self.head, cross=True)
        self.check(cross["weights"], self.attention["cross"][last],
                   "cross-attention from project_query/project_key_value = the weights the model returned")
        translation = " ".join(self.tgt_vocab.decode(self.chosen))
        paths = [plots.cross_attention(host(self.attention["decoder"][last]), self.input_tokens, self.input_tokens,
                                       self.out_dir / "09_decoder_self_attention.png",
                                       title=f"decoder self-attention, layer {last}: each word of \"{translation}\" "
                                             "looks only at <bos> and the words before it (causal mask)",
                                       key_label="decoder input (key)", query_label="decoder input (query)", dpi=DPI),
                 plots.cross_attention(host(self.attention["cross"][last]), self.source_tokens, self.chosen_tokens,
                                       self.out_dir / "09_cross_attention.png",
                                       title=f"cross-attention, layer {last}: the source words each output word "
                                             f"looks at\n{self.quoted()} -> \"{translation}\"",
                                       key_label="source word (key)", query_label="word being produced", dpi=DPI)]
        self.written += paths
        return paths

    # 10. generator
    def generator_probabilities(self):
        plt = plots.pyplot()
        from matplotlib.colors import LogNorm
        with minigrad.no_grad():
            probabilities = host(F.softmax(self.logits, -1))             # (T, V)
        vocab = self.tgt_vocab.to_list()
        columns = []
        for step, row in enumerate(probabilities):
            for token in [self.chosen[step]] + list(np.argsort(-row)[:3]):
                if int(token) not in columns:
                    columns.append(int(token))
        shown = probabilities[:, columns]
        table = np.hstack([shown, 1 - shown.sum(1, keepdims=True)])
        labels = [vocab[c] for c in columns] + [f"the other {len(vocab) - len(columns)} words"]
        rows = [f"step {t}: {word}" for t, word in enumerate(self.chosen_tokens)]
        figure, axis = plt.subplots(figsize=(0.3 * len(labels) + 4, 0.3 * len(rows) + 2.6), layout="constrained")
        norm = LogNorm(vmin=1e-4, vmax=1)
        plots.heatmap(axis, np.clip(table, 1e-4, 1), labels, rows,
                      f"softmax(generator(decoder output)) at each step, for {self.quoted()}"
                      + (f" (reference: \"{self.reference}\")" if self.reference else "")
                      + ":\nthe words that were ever among the 3 most likely (o = the word greedy decoding chose; "
                      "the last column adds up all the others)", colorbar="probability (log scale)", norm=norm, cmap="viridis",
                      xlabel="target word", ylabel="output step: word chosen")
        for step, token in enumerate(self.chosen):
            axis.plot(columns.index(int(token)), step, "o", markersize=7, markerfacecolor="none",
                      markeredgecolor="red", markeredgewidth=1.5)
        return self.save(figure, "10_generator_probabilities.png")

    # 11. the backward graph of one attention layer
    def attention_backward_graph(self):
        attn = self.model.encoder.layers[0].self_attn
        x, _, mask = inputs_of(self.calls, "encoder.layers.0.self_attn")
        with minigrad.set_reference_mode(True), minigrad.enable_grad():  # primitive ops, not one kernel node
            output, weights = attn(x, x, mask)
        self.check(weights, self.attention["encoder"][0], "reference-mode attention = the model's weights")
        params = {f"self_attn.{name}": p for name, p in attn.named_parameters()}
        dot_text = minigrad.viz.to_dot(output, params, name="self_attn output")
        path = self.out_dir / "11_attention_backward_graph.png"
        program = shutil.which("dot")
        if program is None:
            path = path.with_suffix(".dot")
            path.write_text(dot_text)
            print(f"note: {path} is DOT text, not a picture: drawing it needs Graphviz's `dot` program "
                  "(e.g. apt-get install graphviz)")
        else:  # minigrad.viz lays the graph out left to right; top to bottom fits a page
            path.write_bytes(subprocess.run([program, "-Grankdir=TB", f"-Gdpi={DPI}", "-Tpng"], input=dot_text.encode(),
                                            capture_output=True, check=True).stdout)
        self.written.append(path)
        return path


SUBLAYER_NAMES = {"self_attn": "self-attention", "multihead_attn": "cross-attention", "feed_forward": "feed-forward"}
WORD_CLASS_COLOURS = {"noun": "tab:blue", "plural noun": "tab:cyan", "adjective": "tab:green", "verb": "tab:red",
                      "pronoun": "tab:purple", "article": "tab:orange", "other": "tab:gray"}


def word_class(word, side):
    """The toy language's word class of a vocabulary entry (transformer/toy_tasks.py); "other" otherwise."""
    if side == "source":
        classes = {**{n.english: "noun" for n in toy_tasks.NOUNS}, **{n.english + "s": "plural noun"
                                                                       for n in toy_tasks.NOUNS},
                   **{a.english: "adjective" for a in toy_tasks.ADJECTIVES},
                   **{f: "verb" for v in toy_tasks.VERBS for f in (v.base, v.third_person)},
                   **{p.english: "pronoun" for p in toy_tasks.PRONOUNS},
                   **{w: "article" for w in ("the", "a", "an", "some")}}
        return classes.get(word, "other")
    endings = [e for case in toy_tasks.AGREEMENT_ENDINGS.values() for e in case.values()]
    if word in {n.stem for n in toy_tasks.NOUNS}:
        return "noun"
    if word in {n.stem + toy_tasks.PLURAL_NOUN_SUFFIX for n in toy_tasks.NOUNS}:
        return "plural noun"
    if word in {p.target for p in toy_tasks.PRONOUNS}:
        return "pronoun"
    if word in {a + e for a in (toy_tasks.DEFINITE_ARTICLE, toy_tasks.INDEFINITE_ARTICLE) for e in endings}:
        return "article"
    if word in {a.stem + e for a in toy_tasks.ADJECTIVES for e in endings}:
        return "adjective"
    if word in {v.stem + e for v in toy_tasks.VERBS for e in toy_tasks.VERB_ENDINGS.values()}:
        return "verb"
    return "other"


def annotate(axis, values, image):
    """Write each cell's value in it, dark on light cells and light on dark ones."""
    if values.size > 200:
        return
    for (row, column), value in np.ndenumerate(values):
        shade = image.cmap(image.norm(value))
        light = 0.299 * shade[0] + 0.587 * shade[1] + 0.114 * shade[2] > 0.5
        axis.text(column, row, f"{value:.2g}", ha="center", va="center", fontsize=6.5,
                  color="black" if light else "white")


# -- 12. gradient norms over the first steps of training ---------------------------------------------

def parameter_group(name):
    """'encoder.layers.1.self_attn.in_proj_weight' -> ('attention', 'encoder 1 self-attention')."""
    parts = name.split(".")
    if parts[0] in ("src_embed", "tgt_embed"):
        return "embeddings and generator", f"{parts[0].split('_')[0]} embedding"
    if parts[0] == "generator":
        return "embeddings and generator", "generator"
    if parts[1] == "norm":
        return "LayerNorm", f"{parts[0]} final norm"
    side, layer, module = parts[0], parts[2], parts[3]
    if module.startswith("norm"):
        return "LayerNorm", f"{side} {layer} norms"
    if module == "feed_forward":
        return "feed-forward", f"{side} {layer} feed-forward"
    return "attention", f"{side} {layer} {SUBLAYER_NAMES[module]}"


def gradient_norms(state, corpus, steps):
    """Train a fresh model with the checkpoint's settings and seed for `steps` steps (train.py's train_step)
    and record, with a Tensor.register_hook on every parameter, the gradient norm of each group before
    clipping. Returns ({group: [norm per step]}, [learning rate per step], seconds)."""
    settings = state["settings"]
    minigrad.manual_seed(settings["seed"])                        # as train.py: seed, then build the model
    stream = BatchStream(corpus, settings["batch_size"], settings["seed"])
    model = Transformer(**state["model_config"]).to(DEVICE)
    optimizer, schedule = build_optimizer(model, settings, settings["steps"] or steps)
    model.train()
    squares = {}

    def recorder(group):
        def hook(grad):
            squares[group] = squares.get(group, 0.0) + float((grad * grad).sum().item())
        return hook

    handles = [p.register_hook(recorder(parameter_group(name))) for name, p in model.named_parameters()]
    norms, rates, started = {}, [], time.perf_counter()
    guard = DivergenceGuard()
    for step in range(steps):
        squares.clear()
        result = train.train_step(model, stream.next(), optimizer, schedule, settings, DEVICE, guard, step)
        for group, total in squares.items():
            norms.setdefault(group, []).append(math.sqrt(total))
        norms.setdefault(("total", "all parameters"), []).append(math.sqrt(sum(squares.values())))
        rates.append(result["lr"] if result is not None else math.nan)  # None: a non-finite step, skipped
    for handle in handles:
        handle.remove()
    return norms, rates, time.perf_counter() - started


SMOOTHING = 10


def running_mean(values):
    """The mean of the last SMOOTHING values (fewer at the start), at every step."""
    sums = np.cumsum(np.concatenate([[0.0], values]))
    counts = np.minimum(np.arange(1, len(values) + 1), SMOOTHING)
    return (sums[1:] - sums[np.arange(1, len(values) + 1) - counts]) / counts


def draw_gradient_norms(norms, rates, settings, path):
    plt = plots.pyplot()
    figure, axes = plt.subplots(2, 3, figsize=(16, 8), sharex=True, layout="constrained")
    steps = np.arange(1, len(rates) + 1)
    kinds = ("attention", "feed-forward", "LayerNorm", "embeddings and generator", "total")
    for axis, kind in zip(axes.flat, kinds):
        for (group_kind, name), values in sorted(norms.items()):
            if group_kind == kind:
                line, = axis.plot(steps, running_mean(values), label=name, linewidth=1.5)
                if kind == "total":
                    axis.plot(steps, values, color=line.get_color(), linewidth=0.5, alpha=0.4, label="every step")
        if kind == "total" and settings["clip"]:
            axis.axhline(settings["clip"], color="black", linestyle="--", linewidth=1,
                         label=f"--clip {settings['clip']}: longer gradients are scaled down to this")
        axis.set_yscale("log")
        axis.set(title=f"gradient norm: {kind}", ylabel="||gradient||, before clipping")
        axis.legend(fontsize=7)
    axes[1, 2].plot(steps, rates, color="black")
    axes[1, 2].set(title=f"learning rate ({settings['schedule']}, warmup {settings['warmup']} steps)",
                   ylabel="learning rate")
    for axis in axes[1]:
        axis.set_xlabel("training step")
    figure.suptitle(f"the first {len(rates)} training steps of a fresh model (the run's settings and seed): the "
                    f"gradient norm of each parameter group, read by Tensor.register_hook (lines: mean of "
                    f"{SMOOTHING} steps)")
    return plots.save(figure, path, dpi=DPI)


# -- main --------------------------------------------------------------------------------------

def pick_sentence(corpus, sentence):
    """(sentence, reference or None): the given one, else the first held-out source of 6-10 words."""
    if sentence:
        return sentence, dict(corpus.valid_pairs + corpus.train_pairs).get(sentence)
    pairs = corpus.valid_pairs or corpus.train_pairs
    for source, target in pairs:
        if 6 <= len(tokenize(source, corpus.tokenizer.source)) <= 10:
            return source, target
    return pairs[0]


def main(argv=None):
    try:
        return make_figures(*parse_args(sys.argv[1:] if argv is None else argv))
    except (UsageError, DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def make_figures(args, train_flags):
    if not plots.available():
        print("error: make_figures.py draws with matplotlib, which is not installed: pip install \"minigrad[plots]\"",
              file=sys.stderr)
        return 2
    minigrad.tune_cpu()
    if args.checkpoint is None:
        print(f"no --checkpoint: training one into {args.run_dir} (python train.py --out {args.run_dir} "
              f"{' '.join(train_flags)})")
        code = train.main(["train", "--out", args.run_dir] + train_flags)
        if code:
            return code
        args.checkpoint = args.run_dir
    elif train_flags:
        print(f"error: unknown arguments {' '.join(train_flags)} (train.py flags only apply without --checkpoint)",
              file=sys.stderr)
        return 2
    started, cpu_started = time.perf_counter(), time.process_time()
    state = load_checkpoint(args.checkpoint)
    model, src_vocab, tgt_vocab = restore_model(state, DEVICE)
    corpus = prepare_corpus(state["settings"], state["tokenizers"])
    if corpus.src_vocab.to_list() != src_vocab.to_list() or corpus.tgt_vocab.to_list() != tgt_vocab.to_list():
        raise RuntimeError("the run's data no longer gives the checkpoint's vocabularies")
    sentence, reference = pick_sentence(corpus, args.sentence)
    unknown = [t for t in tokenize(sentence, corpus.tokenizer.source) if t not in src_vocab]
    if unknown:
        print(f"note: not in the training vocabulary, read as <unk>: {' '.join(unknown)}")
    if not 0 <= args.head < model.config["n_heads"]:
        print(f"error: --head must be in 0..{model.config['n_heads'] - 1}", file=sys.stderr)
        return 2
    out_dir = Path(args.figures)
    out_dir.mkdir(parents=True, exist_ok=True)

    tour = Tour(model, src_vocab, tgt_vocab, sentence, corpus.tokenizer, reference, out_dir, args.head)
    print(f"sentence: {sentence}\nmodel:    {' '.join(tgt_vocab.decode(tour.chosen))}"
          + (f"\nreference: {reference}" if reference else ""))
    for draw in (tour.token_embeddings, tour.vocabulary_pca, tour.positional_encoding, tour.query_key_value,
                 tour.scores_scale_mask_softmax, tour.weighted_sum_of_values, tour.heads_concat_project,
                 tour.residual_layernorm, tour.feed_forward_relu, tour.decoder_attention,
                 tour.generator_probabilities, tour.attention_backward_graph):
        draw()
    drawn = time.perf_counter() - started
    norms, rates, seconds = gradient_norms(state, corpus, args.grad_steps)
    tour.written.append(draw_gradient_norms(norms, rates, state["settings"], out_dir / "12_gradient_norms.png"))
    print(f"checked {len(tour.checks)} recomputations against the model (largest difference "
          f"{max(d for _, d in tour.checks):.2g})")
    print(f"wrote {len(tour.written)} figures to {out_dir} in {time.perf_counter() - started:.0f} s "
          f"({drawn:.0f} s for the sentence's, {seconds:.0f} s for {args.grad_steps} training steps; "
          f"{time.process_time() - cpu_started:.0f} s of CPU time)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
