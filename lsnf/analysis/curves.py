"""Figures of an experiment's models (matplotlib, Agg): training and validation curves from
their ``metrics.jsonl``, and the K_test sensitivity of the reconstruction error from their
``reconstruction.json`` (docs/method.md §7.1)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lsnf.io import atomic_write_bytes, read_json, read_json_lines

__all__ = ["plot_curves", "plot_test_steps"]


def _figure(ncols: int) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, ncols, figsize=(5 * ncols, 4), squeeze=False)


def _save(fig: Any, axes: list[Any], out: str | Path) -> None:
    import matplotlib.pyplot as plt

    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write_bytes(out, lambda fh: fig.savefig(fh, format="png", dpi=100))
    plt.close(fig)


def plot_curves(files: list[str | Path], out: str | Path) -> None:
    """Training curves (``metrics.jsonl``): generator and prior losses per epoch, and the
    validation curves (docs/method.md §6.5) against learning iterations, where each model's
    convergence shows; for ``reconstruction.json`` results, K_test sensitivity."""
    if all(Path(f).suffix == ".json" for f in files):
        return plot_test_steps(files, out)
    from lsnf.training.convergence import CURVES

    rows_of = {Path(f): read_json_lines(f) for f in files}
    curves = [c for c in CURVES if any(c in r for rows in rows_of.values() for r in rows)]
    fig, (axes,) = _figure(2 + len(curves))
    ax_g, ax_p, *ax_v = axes
    for i, (f, rows) in enumerate(rows_of.items()):
        label, colour = f.parent.name, f"C{i % 10}"  # one colour per model in every panel
        trained = [r for r in rows if "train_mse_per_pixel" in r]  # epochs, not point 0
        epochs = [r["epoch"] for r in trained]
        style = {"marker": "o", "label": label, "color": colour}
        ax_g.plot(epochs, [r["train_mse_per_pixel"] for r in trained], **style)
        if trained and "loss_p" in trained[0]:
            ax_p.plot(epochs, [r["loss_p"] for r in trained], **style)
        for ax, curve in zip(ax_v, curves, strict=True):
            points = [r for r in rows if curve in r]
            ax.plot([r["iteration"] for r in points], [r[curve] for r in points], **style)
    ax_g.set(xlabel="epoch", ylabel="training MSE per pixel ([-1, 1])", title="generator")
    ax_p.set(xlabel="epoch", ylabel="prior loss (flow: -log p(z); EBM: contrastive)", title="prior")
    for ax, curve in zip(ax_v, curves, strict=True):
        ax.set(xlabel="learning iterations", ylabel=CURVES[curve][0], title=CURVES[curve][0])
    _save(fig, list(axes), out)


def plot_test_steps(result_files: list[str | Path], out: str | Path) -> None:
    """Reconstruction MSE against the number of test-time Langevin steps, one line per model
    (the readings ``mse_by_test_steps`` of one trajectory per image)."""
    fig, ((ax,),) = _figure(1)
    for f in map(Path, result_files):
        record = read_json(f)
        if "failed" in record:  # a model that failed to train (docs/method.md §6.7): no line
            continue
        by_steps = record["mse_by_test_steps"]
        steps = sorted(int(k) for k in by_steps)
        ax.plot(steps, [by_steps[str(k)] for k in steps], marker="o", label=f.parent.name)
    ax.set(
        xscale="log",
        xlabel="K_test (noise-free test-time Langevin steps)",
        ylabel="test MSE per pixel ([-1, 1])",
        title="reconstruction vs K_test",
    )
    _save(fig, [ax], out)
