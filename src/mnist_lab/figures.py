"""Matplotlib figures of what a model learned; shared by training callbacks and eval.py."""

from __future__ import annotations

import math
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # figures are written to files and TensorBoard, never shown

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from torchmetrics.classification import MulticlassConfusionMatrix  # noqa: E402


def digit_grid(images: torch.Tensor, titles: Sequence[str], ncols: int = 8, colors: Sequence[str] | None = None) -> Figure:
    """Images (N, 1, 28, 28) or (N, 28, 28) in a grid, each with its title."""
    n = max(len(images), 1)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * 1.1, nrows * 1.3), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(images):
            ax.imshow(images[i].reshape(28, 28).float().cpu(), cmap="gray_r", vmin=0, vmax=1)
            ax.set_title(titles[i], fontsize=8, color=colors[i] if colors else "black")
    fig.tight_layout()
    return fig


def misclassified_grid(images: torch.Tensor, labels: torch.Tensor, preds: torch.Tensor, limit: int = 64) -> Figure:
    """The first ``limit`` wrongly classified digits, titled "true -> predicted"."""
    wrong = torch.nonzero(preds != labels).flatten()[:limit]
    titles = [f"{int(labels[i])} -> {int(preds[i])}" for i in wrong]
    return digit_grid(images[wrong], titles)


def predictions_grid(images: torch.Tensor, labels: torch.Tensor, probs: torch.Tensor, limit: int = 32) -> Figure:
    """The first ``limit`` digits with the predicted class and its probability; mistakes in red."""
    conf, preds = probs[:limit].max(dim=1)
    titles = [f"{int(p)} ({100 * float(c):.0f}%)" for p, c in zip(preds, conf)]
    colors = ["black" if p == y else "red" for p, y in zip(preds, labels[:limit])]
    return digit_grid(images[:limit], titles, colors=colors)


def confusion_matrix_figure(confusion: MulticlassConfusionMatrix, matrix: torch.Tensor | None = None) -> Figure:
    fig, ax = confusion.plot(val=matrix, labels=[str(d) for d in range(10)])
    fig.set_size_inches(7, 6)
    ax.set_title("Confusion matrix (rows: true digit, columns: predicted)")
    return fig


def learning_curves(history: Sequence[dict[str, float]]) -> Figure:
    """Loss and accuracy per epoch for train and validation."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    epochs = [row["epoch"] + 1 for row in history]
    for ax, metric in zip(axes, ("loss", "acc")):
        for stage in ("train", "val"):
            values = [row.get(f"{stage}_{metric}") for row in history]
            if any(v is not None for v in values):
                ax.plot(epochs, values, marker="o", label=stage)
        ax.set_xlabel("epoch")
        ax.set_ylabel({"loss": "cross-entropy", "acc": "accuracy"}[metric])
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def save(fig: Figure, path) -> None:
    fig.savefig(path, dpi=100)
    plt.close(fig)


def objective_plot(params: dict[str, list], objective: Sequence, name: str) -> Figure:
    """The objective against each swept parameter, one panel each (failed runs left out)."""
    fig, axes = plt.subplots(1, len(params), figsize=(4 * len(params), 3.5), squeeze=False)
    for ax, (param, values) in zip(axes[0], params.items()):
        points = [(v, y) for v, y in zip(values, objective) if y is not None and y == y]
        try:
            xs = [float(v) for v, _ in points]
            if min(xs) > 0 and max(xs) / min(xs) >= 10:
                ax.set_xscale("log")
        except (TypeError, ValueError):
            xs = [str(v) for v, _ in points]
        ax.scatter(xs, [y for _, y in points])
        ax.set_xlabel(param)
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
