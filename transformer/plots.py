"""Pictures of a training run, drawn with matplotlib when it is installed (pip install "minigrad[plots]").

    if plots.available():
        plots.training_curves(records, "runs/toy/curves.png")          # records from metrics.jsonl
        plots.cross_attention(weights, src_tokens, out_tokens, "runs/toy/attention.png")

Everything here works on plain NumPy arrays and lists: the model is not imported, so a plot can
be redrawn from a metrics log alone.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def pyplot():
    """matplotlib.pyplot, drawing to files only (the Agg backend)."""
    import matplotlib
    matplotlib.use("Agg")     # files only: works without a display, e.g. over ssh or in CI
    import matplotlib.pyplot as plt
    return plt


def training_curves(records: Sequence[dict], path: str | Path) -> Path:
    """Loss (label-smoothed and plain NLL) and token accuracy against the step, train and valid, with
    the greedy exact match of the validations that decoded, and the step best.ckpt holds.

    The smoothed loss cannot go below the entropy of the smoothed target, so it flattens out well
    above zero; the NLL and accuracy panels show whether the model is still improving.
    """
    plt = pyplot()
    train = [r for r in records if r.get("kind") == "train"]
    valid = [r for r in records if r.get("kind") == "valid"]
    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(11, 4))
    for key, label in (("loss", "train loss (label-smoothed)"), ("nll", "train NLL")):
        loss_axes.plot([r["step"] for r in train], [r[key] for r in train], label=label)
    if valid:
        loss_axes.plot([r["step"] for r in valid], [r["nll"] for r in valid], "o-", label="valid NLL")
    loss_axes.set(xlabel="step", ylabel="nats per token", title="Loss")
    loss_axes.set_yscale("log")
    loss_axes.legend()
    accuracy_axes.plot([r["step"] for r in train], [r["token_accuracy"] for r in train], label="train token acc.")
    if valid:
        accuracy_axes.plot([r["step"] for r in valid], [r["token_accuracy"] for r in valid], "o-",
                           label="valid token acc. (teacher-forced)")
    decoded = [r for r in valid if "exact_match" in r]
    if decoded:
        accuracy_axes.plot([r["step"] for r in decoded], [r["exact_match"] for r in decoded], "s-",
                           label=f"valid exact match (greedy, {decoded[-1]['sentences']} sentences)")
    best = [r for r in valid if r.get("best")]
    if best:     # the last record that was the best so far is the one best.ckpt holds
        accuracy_axes.axvline(best[-1]["step"], color="grey", linestyle=":", label=f"best.ckpt (step {best[-1]['step']})")
    accuracy_axes.set(xlabel="step", ylabel="fraction", title="Accuracy", ylim=(0, 1.02))
    accuracy_axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return Path(path)


def heatmap(axis, matrix, column_labels=None, row_labels=None, title=None, colorbar=None, cmap="viridis",
            vmin=None, vmax=None, norm=None, xlabel=None, ylabel=None):
    """Draw `matrix` (rows x columns, a host array) on `axis`, rows and columns labelled (e.g. by tokens),
    with a colour bar saying what the colour means when `colorbar` is given; returns the image.

    `norm` (a matplotlib Normalize, e.g. LogNorm) replaces vmin/vmax.
    """
    limits = {} if norm is not None else {"vmin": vmin, "vmax": vmax}
    image = axis.imshow(matrix, cmap=cmap, norm=norm, aspect="auto", interpolation="nearest", **limits)
    if column_labels is not None:
        axis.set_xticks(range(len(column_labels)), labels=list(column_labels), rotation=90, fontsize=8)
    if row_labels is not None:
        axis.set_yticks(range(len(row_labels)), labels=list(row_labels), fontsize=8)
    axis.set_title(title or "", fontsize=9)
    axis.set(xlabel=xlabel or "", ylabel=ylabel or "")
    if colorbar is not None:
        axis.figure.colorbar(image, ax=axis, label=colorbar, shrink=0.9)
    return image


def save(figure, path: str | Path, dpi: int = 110) -> Path:
    """Write the figure to `path` and close it."""
    figure.savefig(path, dpi=dpi)
    pyplot().close(figure)
    return Path(path)


def cross_attention(weights, source_tokens: Sequence[str], output_tokens: Sequence[str],
                    path: str | Path, title: str = "cross-attention", key_label: str = "source token",
                    query_label: str = "output token", dpi: int = 110) -> Path:
    """One heatmap per head and their average: which source token each output token looked at.

    weights: a host array (heads, T, S), e.g. from `tensor.numpy()`: softmax rows over the S source
    tokens, for output tokens 0..T-1. The labels name the axes (decoder self-attention draws with
    its own tokens on both).
    """
    plt = pyplot()
    weights = weights.astype("float64")
    n_heads = weights.shape[0]
    panels = [(f"head {h}", weights[h]) for h in range(n_heads)] + [("average of heads", weights.mean(0))]
    columns = min(len(panels), 3)
    rows = -(-len(panels) // columns)
    cell = 0.33
    width = max(3.0, cell * len(source_tokens) + 1.5)
    height = max(2.5, cell * len(output_tokens) + 1.2)
    figure, axes = plt.subplots(rows, columns, figsize=(columns * width + 1.0, rows * height), squeeze=False,
                                layout="constrained")
    for axis in axes.flat[len(panels):]:
        axis.axis("off")
    for index, (axis, (name, matrix)) in enumerate(zip(axes.flat, panels)):
        image = heatmap(axis, matrix, source_tokens, output_tokens, name, vmin=0.0, vmax=1.0,
                        xlabel=key_label if index >= len(panels) - columns else None,
                        ylabel=query_label if index % columns == 0 else None)
    figure.colorbar(image, ax=axes, label="attention weight (each row sums to 1)", shrink=0.8)
    figure.suptitle(title)
    return save(figure, path, dpi)
