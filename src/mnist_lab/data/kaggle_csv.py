"""Kaggle "Digit Recognizer" CSVs: a header, an optional ``label`` column, then 784 pixels 0-255 per row."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from mnist_lab.data.mnist import CLASSES, SIDE
from mnist_lab.errors import DataError

PIXELS = SIDE * SIDE


def _header(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"{path}: no such CSV file.")
    with path.open() as f:
        header = f.readline().strip().split(",")
    if header == [""]:
        raise DataError(f"{path}: the file is empty; expected a header line and rows of {PIXELS} pixels.")
    return header


def read_image_csv(path: Path, classes: int = CLASSES) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """uint8 images (N, 28, 28) and, if the file has a ``label`` column, labels (N,) from 0 to ``classes - 1``."""
    path = Path(path)
    header = _header(path)
    has_label = header[0].strip().lower() == "label"
    if len(header) != PIXELS + has_label:
        raise DataError(
            f"{path}, line 1: header has {len(header)} columns; expected {PIXELS} pixels, optionally after 'label'."
        )
    try:
        with warnings.catch_warnings():  # an empty body is reported below, not as a warning
            warnings.simplefilter("ignore", UserWarning)
            values = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.int64, ndmin=2)
    except ValueError:
        _raise_first_bad_line(path, len(header))
        raise
    if values.size == 0:
        raise DataError(f"{path}: has a header but no rows.")
    pixels, labels = values[:, int(has_label) :], values[:, 0] if has_label else None
    _check_range(path, pixels, 0, 255, "pixel value")
    if labels is not None:
        _check_range(path, labels[:, None], 0, classes - 1, "label")
    images = torch.from_numpy(pixels.astype(np.uint8)).view(-1, SIDE, SIDE)
    return images, torch.from_numpy(labels) if labels is not None else None


def _check_range(path: Path, values: np.ndarray, low: int, high: int, what: str) -> None:
    bad = np.flatnonzero(((values < low) | (values > high)).any(axis=1))
    if bad.size:
        raise DataError(f"{path}, line {bad[0] + 2}: {what} outside {low}-{high}.")


def _raise_first_bad_line(path: Path, ncols: int) -> None:
    # numpy's row numbers are inconsistent between its errors, so find the line ourselves.
    with path.open() as f:
        next(f)
        for lineno, line in enumerate(f, start=2):
            cells = line.strip().split(",")
            if cells == [""]:
                continue
            if len(cells) != ncols:
                raise DataError(f"{path}, line {lineno}: {len(cells)} columns, expected {ncols}.")
            for col, cell in enumerate(cells, start=1):
                try:
                    int(cell)
                except ValueError:
                    raise DataError(f"{path}, line {lineno}, column {col}: {cell!r} is not an integer.") from None


def write_submission(labels: torch.Tensor, path: Path) -> None:
    """Kaggle's submission format: ImageId (from 1), Label."""
    with Path(path).open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["ImageId", "Label"])
        writer.writerows((i + 1, int(label)) for i, label in enumerate(labels))
