"""The figures show what their titles say, read on their pixels: where each colour is, not how large a file is."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mnist_lab import figures
from support.pixels import rendered


def coloured(image: Image.Image, hue: str) -> np.ndarray:
    """(row, column) of the pixels that are clearly ``hue`` (blue or red), as the heat maps ink their cells."""
    r, g, b = (np.asarray(image.convert("RGB")).astype(int)[..., i] for i in range(3))
    mask = (b - r > 60) if hue == "blue" else (r - b > 60) & (r - g > 60)
    return np.argwhere(mask)


def cells(points: np.ndarray, origin: np.ndarray, size: float) -> set[tuple[int, int]]:
    return {tuple(cell) for cell in ((points - origin) // size).astype(int)}


def test_the_confusion_matrix_inks_right_answers_blue_on_its_diagonal_and_mistakes_red_where_they_fell():
    n = 10
    right = figures.confusion_matrix_image(torch.eye(n, dtype=torch.long) * 50)
    blue = coloured(right, "blue")
    assert len(coloured(right, "red")) == 0
    origin = blue.min(0)
    size = (blue.max(0) - origin + 1) / n  # the cells span the blue pixels' box
    assert cells(blue, origin, size) == {(i, i) for i in range(n)}  # (true row, predicted column)

    mistakes = torch.eye(n, dtype=torch.long) * 50
    mistakes[2, 7] = 20  # twenty 2s taken for 7s
    wrong = figures.confusion_matrix_image(mistakes)
    assert cells(coloured(wrong, "red"), origin, size) == {(2, 7)}
    assert cells(coloured(wrong, "blue"), origin, size) == {(i, i) for i in range(n)}


def test_the_misclassified_grid_shows_the_wrong_digits_and_only_them():
    images = torch.full((12, 28, 28), 0.9)  # right answers: a dark gray nobody should see
    labels, preds = torch.arange(12) % 10, torch.arange(12) % 10
    shades = {3: 0.2, 7: 0.4, 11: 0.6}  # each wrong digit a flat shade of its own, drawn as 1 - shade (dark on white)
    for i, shade in shades.items():
        images[i], preds[i] = shade, (labels[i] + 1) % 10
    grid = np.asarray(figures.misclassified_grid(images, labels, preds).convert("L"))
    levels, counts = np.unique(grid, return_counts=True)
    tiles = {int(level) for level, count in zip(levels, counts) if count >= 28 * 28 and level != 255}
    assert tiles == {round(255 * (1 - shade)) for shade in shades.values()}


def test_the_learning_curves_draw_each_stage_where_its_numbers_go():
    epochs = range(6)
    history = [
        {
            "epoch": e,
            "train_loss": 2.0 - 0.3 * e,
            "val_loss": 0.5 + 0.2 * e,
            "train_acc": 0.5 + 0.08 * e,
            "val_acc": 0.95 - 0.06 * e,
        }
        for e in epochs
    ]
    pixels = rendered(figures.learning_curves(history))
    half = pixels.shape[1] // 2
    # matplotlib's first two colours: train (C0, blue), then val (C1, orange). Down the image is up the y-axis's
    # opposite, so a falling line's pixels go down as they go right: a positive slope in (column, row).
    for colour, panel, trend in [
        ((31, 119, 180), slice(0, half), "falls"),  # train loss
        ((255, 127, 14), slice(0, half), "rises"),  # val loss
        ((31, 119, 180), slice(half, None), "rises"),  # train accuracy
        ((255, 127, 14), slice(half, None), "falls"),  # val accuracy
    ]:
        rows, columns = np.nonzero((np.abs(pixels[:, panel] - colour) < 40).all(-1))
        slope = np.polyfit(columns, rows, 1)[0]
        assert slope > 0.1 if trend == "falls" else slope < -0.1, (colour, panel, slope)


@pytest.mark.parametrize("n", [1, 2])
def test_the_learning_curves_number_whole_epochs_from_zero(n):
    history = [{"epoch": e, "train_loss": 1.0 / (e + 1), "val_acc": 0.9 + e / 100} for e in range(n)]
    figure = figures.learning_curves(history)
    figure.canvas.draw()
    for ax in figure.axes:
        low, high = ax.get_xlim()
        assert [t for t in ax.get_xticks() if low <= t <= high] == list(range(n))  # not 0.25, nor 1-based
