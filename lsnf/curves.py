"""Training curves of an experiment's models from their ``metrics.jsonl`` (matplotlib, Agg)."""

from __future__ import annotations

import json
from pathlib import Path

from lsnf.io import atomic_write_bytes

__all__ = ["plot_curves"]


def plot_curves(metrics_files: list[str | Path], out: str | Path) -> None:
    """One line per model: training MSE per pixel and prior loss against epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_g, ax_p) = plt.subplots(1, 2, figsize=(10, 4))
    for f in map(Path, metrics_files):
        rows = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
        epochs = [r["epoch"] for r in rows]
        label = f.parent.name
        ax_g.plot(epochs, [r["train_mse_per_pixel"] for r in rows], marker="o", label=label)
        if rows and "loss_p" in rows[0]:
            ax_p.plot(epochs, [r["loss_p"] for r in rows], marker="o", label=label)
    ax_g.set(xlabel="epoch", ylabel="training MSE per pixel ([-1, 1])", title="generator")
    ax_p.set(xlabel="epoch", ylabel="prior loss (flow: -log p(z); EBM: contrastive)",
             title="prior")  # fmt: skip
    for ax in (ax_g, ax_p):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write_bytes(out, lambda fh: fig.savefig(fh, format="png", dpi=100))
    plt.close(fig)
