"""What a run draws: test-set pictures as images (digit grids, confusion matrix) and matplotlib plots.

The test-set pictures are drawn with tensor ops and PIL, in milliseconds: matplotlib took ~3 s
for them (a subplot per digit), longer than testing 10,000 images. matplotlib, imported only when
needed, draws the learning curves and the sweep summary.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Optional, Sequence

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torchvision.utils import make_grid

from mnist_lab.data.mnist import SIDE

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

CAPTION_CHARS = 5  # a class name's characters in a caption (a tile is 56 px wide); longer names are cut
ZOOM, CAPTION, GAP = 2, 14, 6  # each digit drawn at 2 x SIDE px, a caption strip below it, space between tiles
TITLE = 24  # px: the strip above a picture that names it
# matplotlib's DejaVu Sans (found without importing matplotlib): PIL's own default font has no arrow and
# kerns "4 -> 6" into "4-> 6".
MATPLOTLIB = Path(importlib.util.find_spec("matplotlib").submodule_search_locations[0])
FONT = ImageFont.truetype(str(MATPLOTLIB / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"), 11)
TITLE_FONT = FONT.font_variant(size=13)


def to_image(grid: torch.Tensor) -> Image.Image:
    """A (C, H, W) float tensor in [0, 1] as an RGB PIL image."""
    return Image.fromarray(grid.expand(3, -1, -1).mul(255).round().byte().permute(1, 2, 0).numpy())


def titled(image: Image.Image, title: str) -> Image.Image:
    """``image`` below a strip with ``title`` in it, widened where the title is wider."""
    width = max(image.width, int(TITLE_FONT.getlength(title)) + 2 * GAP)
    framed = Image.new("RGB", (width, image.height + TITLE), "white")
    framed.paste(image, ((width - image.width) // 2, TITLE))
    ImageDraw.Draw(framed).text((width // 2, TITLE // 2), title, fill="black", font=TITLE_FONT, anchor="mm")
    return framed


def image_grid(
    images: torch.Tensor, captions: Sequence[str], colors: Sequence[str] | None = None, ncols: int = 8
) -> Image.Image:
    """Images (N, C, H, W) or (N, H, W) in [0, 1], each on a tile of a digit's size (gray ones dark on white),
    with its caption below."""
    tiles = images.detach().float().cpu().clamp(0, 1)
    tiles = tiles.unsqueeze(1) if tiles.dim() == 3 else tiles
    tiles = 1 - tiles if tiles.shape[1] == 1 else tiles
    tiles = F.interpolate(tiles, size=(SIDE * ZOOM, SIDE * ZOOM)) if len(tiles) else tiles
    tiles = F.pad(tiles, (0, 0, 0, CAPTION), value=1)
    if not len(tiles):
        tiles = torch.ones(1, 1, SIDE * ZOOM + CAPTION, SIDE * ZOOM)
    image = to_image(make_grid(tiles, nrow=ncols, padding=GAP, pad_value=1))
    draw = ImageDraw.Draw(image)
    step_x, step_y = tiles.shape[3] + GAP, tiles.shape[2] + GAP
    for i, caption in enumerate(captions):
        x, y = GAP + (i % ncols) * step_x, GAP + (i // ncols) * step_y + SIDE * ZOOM
        draw.text(
            (x + SIDE * ZOOM // 2, y + CAPTION // 2),
            caption,
            fill=colors[i] if colors else "black",
            font=FONT,
            anchor="mm",
        )
    return image


def _name(classes: Optional[Sequence[str]], label: Any) -> str:
    """A class's name as a caption shows it (cut to fit a tile); its number without names."""
    name = classes[int(label)] if classes else str(int(label))
    return name if len(name) <= CAPTION_CHARS else name[: CAPTION_CHARS - 1] + "…"


def misclassified_grid(
    images: torch.Tensor,
    labels: torch.Tensor,
    preds: torch.Tensor,
    limit: int = 64,
    classes: Optional[Sequence[str]] = None,
) -> Image.Image:
    """The first ``limit`` wrongly classified digits, captioned "true → predicted"."""
    every = torch.nonzero(preds != labels).flatten()
    wrong = every[:limit]
    grid = image_grid(images[wrong], [f"{_name(classes, labels[i])} → {_name(classes, preds[i])}" for i in wrong])
    shown = f"the first {len(wrong)} of {len(every)}" if len(every) > len(wrong) else f"all {len(every)}"
    return titled(grid, f"Misclassified test digits, true → predicted ({shown})")


def predictions_grid(
    images: torch.Tensor,
    labels: torch.Tensor,
    probs: torch.Tensor,
    limit: int = 32,
    classes: Optional[Sequence[str]] = None,
) -> Image.Image:
    """The first ``limit`` digits with the predicted class and its probability; mistakes in red."""
    conf, preds = probs[:limit].max(dim=1)
    captions = [f"{_name(classes, p)} ({100 * float(c):.0f}%)" for p, c in zip(preds, conf)]
    colors = ["black" if p == y else "red" for p, y in zip(preds, labels[:limit])]
    return titled(image_grid(images[:limit], captions, colors), "Test digits: predicted (probability), mistakes red")


def confusion_matrix_image(matrix: torch.Tensor, cell: int = 44) -> Image.Image:
    """A (true x predicted) count matrix as a heat map with the counts; blue on the diagonal, red off it."""
    n = len(matrix)
    counts = matrix.detach().cpu().long()
    share = counts.double() / counts.sum(1, keepdim=True).clamp(min=1)  # of each true digit's images
    strength = share.clamp(max=1).sqrt()  # so that a few mistakes still show
    diagonal = torch.eye(n, dtype=torch.bool)
    ink = torch.where(
        diagonal, torch.tensor([0.2, 0.45, 0.8]).view(3, 1, 1), torch.tensor([0.85, 0.2, 0.2]).view(3, 1, 1)
    )
    cells = 1 - strength.float() * (1 - ink)  # (3, n, n): white for 0, the colour for all
    top, left = 40, 40
    image = Image.new("RGB", (left + n * cell + 10, top + n * cell + 10), "white")
    image.paste(to_image(cells.repeat_interleave(cell, 1).repeat_interleave(cell, 2)), (left, top))
    draw = ImageDraw.Draw(image)
    draw.text((left + n * cell // 2, 10), "predicted digit", fill="black", font=FONT, anchor="mm")
    draw.text((4, top - 14), "true", fill="black", font=FONT)
    for i in range(n):
        draw.text((left + i * cell + cell // 2, top - 8), str(i), fill="black", font=FONT, anchor="mm")
        draw.text((left - 10, top + i * cell + cell // 2), str(i), fill="black", font=FONT, anchor="mm")
        for j in range(n):
            text = "white" if strength[i, j] > 0.6 else "black"
            draw.text(
                (left + j * cell + cell // 2, top + i * cell + cell // 2),
                str(int(counts[i, j])),
                fill=text,
                font=FONT,
                anchor="mm",
            )
    return titled(image, f"Confusion matrix: {int(counts.sum()):,} test digits")


def learning_curves(history: Sequence[dict[str, float]]) -> Figure:
    """Loss and accuracy per epoch for train and validation; epochs numbered from 0, as in epochs.csv."""
    from matplotlib.ticker import MaxNLocator

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    epochs = [row["epoch"] for row in history]
    for ax, metric in zip(axes, ("loss", "acc")):
        for stage in ("train", "val"):
            values = [row.get(f"{stage}_{metric}") for row in history]
            if any(v is not None for v in values):
                ax.plot(epochs, values, marker="o", label=stage)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # no epoch 1.25, even for one
        ax.set_ylabel({"loss": "cross-entropy", "acc": "accuracy"}[metric])
        ax.set_title({"loss": "Loss", "acc": "Accuracy"}[metric])
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
    fig.suptitle("Learning curves")
    fig.tight_layout()
    return fig


def pyplot():
    import matplotlib

    matplotlib.use("Agg")  # figures are written to files, never shown
    import matplotlib.pyplot as plt

    return plt


def save(fig: Figure, path: str | Path) -> None:
    fig.savefig(path, dpi=100)
    pyplot().close(fig)


def _numbers(values: Sequence) -> list[float] | None:
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError):
        return None


@dataclass
class Runs:
    """A sweep's runs as the summary plot shows them: objective reached, finished or pruned, the best."""

    objective: Sequence
    done: list[bool]  # finished: a candidate for best
    stopped: list[bool]  # pruned, at the objective it reached
    failed: list[bool]  # no objective: drawn as crosses below every other run
    best: int | None
    floor: float

    @classmethod
    def of(cls, objective: Sequence, pruned: Sequence[bool]) -> Runs:
        pruned = list(pruned) or [False] * len(objective)
        reached = [y is not None and y == y for y in objective]
        done = [ok and not p for ok, p in zip(reached, pruned)]
        finished = [y for y, ok in zip(objective, reached) if ok]
        best = max((i for i, ok in enumerate(done) if ok), key=lambda i: objective[i], default=None)
        low, high = (min(finished), max(finished)) if finished else (0.0, 0.0)
        floor = low - 0.1 * ((high - low) or 0.01)
        stopped = [ok and p for ok, p in zip(reached, pruned)]
        return cls(objective, done, stopped, [not ok for ok in reached], best, floor)


def _picked(values: Sequence, chosen: Sequence[bool]) -> list:
    return [v for v, ok in zip(values, chosen) if ok]


def _panel(ax: Axes, param: str, values: list, runs: Runs, name: str, log: bool, errors: Sequence) -> None:
    """One swept parameter's panel: finished dots (with error bars), pruned rings, the best run's star, failed
    runs' crosses."""
    from matplotlib.ticker import MaxNLocator

    numbers = _numbers(values)
    xs = numbers or [str(v) for v in values]
    if any(e is not None for e in errors):
        spread = [e or 0.0 for e in _picked(errors, runs.done)]
        ax.errorbar(_picked(xs, runs.done), _picked(runs.objective, runs.done), yerr=spread, fmt="none", capsize=3)
    ax.scatter(_picked(xs, runs.done), _picked(runs.objective, runs.done), label="finished")
    if any(runs.stopped):
        ys = _picked(runs.objective, runs.stopped)
        ax.scatter(_picked(xs, runs.stopped), ys, facecolors="none", edgecolors="grey", label="pruned")
    if runs.best is not None:
        star = {"marker": "*", "s": 250, "color": "gold", "edgecolor": "black", "zorder": 3}
        ax.scatter([xs[runs.best]], [runs.objective[runs.best]], label="best", **star)
    if any(runs.failed):
        crosses = _picked(xs, runs.failed)
        ax.scatter(crosses, [runs.floor] * len(crosses), marker="x", color="red", label="failed")
    if log:
        ax.set_xscale("log")
        ax.tick_params(axis="x", which="both", labelrotation=45)  # 2x10^-2, 3x10^-2...: side by side they overlap
    elif numbers and all(x.is_integer() for x in numbers):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel=param, ylabel=name)
    ax.margins(0.1)  # the best run's star stays inside the frame
    ax.grid(alpha=0.3)


def objective_plot(
    params: dict[str, list],
    objective: Sequence,
    name: str,
    log_params: Iterable[str] = (),
    pruned: Sequence[bool] = (),
    errors: Sequence[float | None] = (),
    title: str = "",
) -> Figure:
    """The objective against each swept parameter, one panel each: the best run starred, ``pruned`` runs
    hollow grey at the objective they reached, failed runs (objective None or NaN) as red crosses along
    the bottom, ``errors`` (a setting's std over its folds or seeds) as error bars. A log axis only for
    ``log_params``."""
    runs = Runs.of(objective, pruned)
    fig, axes = pyplot().subplots(1, len(params), figsize=(4 * len(params), 3.8), squeeze=False)
    for ax, (param, values) in zip(axes[0], params.items()):
        _panel(ax, param, values, runs, name, param in set(log_params), errors)
    axes[0][0].legend(fontsize="small")
    fig.suptitle(title or f"{name} against each swept parameter")
    fig.tight_layout()
    return fig


def pareto_plot(
    points: Sequence[tuple[float, float]], front: Sequence[bool], names: Sequence[str], title: str
) -> Figure:
    """Each finished run at its two objectives, the Pareto-optimal ones filled and joined by their front."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 5))
    inner = [p for p, best in zip(points, front) if best]
    other = [p for p, best in zip(points, front) if not best]
    if other:
        ax.scatter(*zip(*other), facecolors="none", edgecolors="grey", label="dominated")
    if inner:
        ax.plot(*zip(*sorted(inner)), "o-", color="tab:blue", label="Pareto front")
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig
