"""Draws docs/figures/distributed_gradient_averaging.png, the picture in docs/distributed.md:
two ranks, each with its shard of the batch, whose gradient buckets are all-reduced while backward
goes on, so that both make the same update.

    python docs/draw_distributed.py
"""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

OUT = Path(__file__).parent / "figures" / "distributed_gradient_averaging.png"
RANK_COLOURS = ("#4c72b0", "#dd8452")


def box(ax, x, y, w, h, text, colour, alpha=0.25, size=9):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02", fc=colour, ec=colour, alpha=alpha))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=size)


def arrow(ax, start, end, colour="0.3"):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=12, color=colour, lw=1.2))


def main():
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7.5), gridspec_kw={"height_ratios": [1.25, 1]})
    for ax in (top, bottom):
        ax.set_xlim(0, 11)
        ax.axis("off")
    top.set_ylim(0, 5.2)
    top.set_title("One step of data parallelism on 2 ranks (mpirun -n 2)", fontsize=12)
    box(top, 0.1, 2.1, 1.6, 1.0, "the step's batch\n2 x B pairs", "0.6")
    for rank, y in ((0, 3.6), (1, 0.6)):
        c = RANK_COLOURS[rank]
        arrow(top, (1.7, 2.6), (2.2, y + 0.5), c)
        box(top, 2.2, y, 1.5, 1.0, f"rank {rank}: its\nB pairs, n{rank} tokens", c)
        arrow(top, (3.7, y + 0.5), (4.1, y + 0.5), c)
        box(top, 4.1, y, 1.7, 1.0, f"forward, loss =\nmean x 2·n{rank}/(n0+n1)", c)
        arrow(top, (5.8, y + 0.5), (6.2, y + 0.5), c)
        box(top, 6.2, y, 1.4, 1.0, f"backward:\ngradient g{rank}", c)
        arrow(top, (7.6, y + 0.5), (8.0, 2.6 + (0.3 if rank == 0 else -0.3)), c)
        arrow(top, (9.6, 2.6 + (0.3 if rank == 0 else -0.3)), (9.8, y + 0.5), c)
        box(top, 9.8, y, 1.1, 1.0, "same\nupdate", c)
    box(top, 8.0, 1.9, 1.6, 1.4, "all-reduce, AVG\n(g0 + g1) / 2\nMPI or NCCL", "#55a868", alpha=0.3)
    top.text(5.5, 2.6, "one all-reduce of the token counts\ngives n0 + n1 to both ranks",
             ha="center", va="center", fontsize=8.5, style="italic")

    bottom.set_ylim(0, 3.4)
    bottom.set_title("Inside backward: buckets are sent as soon as their gradients are ready", fontsize=12)
    layers = ["output layer", "decoder", "encoder", "embeddings"]
    for i, name in enumerate(layers):
        box(bottom, 0.3 + 2.2 * i, 2.2, 2.0, 0.8, f"backward of the\n{name}", "0.55", alpha=0.3)
    buckets = [(2.3, 2.0, "bucket 1 (output layer)\nall-reduce"), (4.5, 2.0, "bucket 2 (decoder)\nall-reduce"),
               (9.1, 1.3, "bucket 3 (encoder,\nembeddings)")]
    for start, width, label in buckets:
        box(bottom, start, 1.1, width, 0.7, label, "#55a868", alpha=0.35, size=8.5)
        arrow(bottom, (start, 2.2), (start + 0.1, 1.8), "#55a868")
    bottom.text(5.5, 0.75, "buckets 1 and 2 travel while backward goes on; the last one is not hidden, and the "
                "last hook waits for all, then copies the averages into .grad", ha="center", fontsize=8.5,
                style="italic")
    arrow(bottom, (0.3, 0.3), (10.9, 0.3))
    bottom.text(0.3, 0.05, "time", fontsize=8.5)
    OUT.parent.mkdir(exist_ok=True)
    fig.tight_layout()
    fig.savefig(OUT, dpi=110)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
