"""A matplotlib figure read as a person sees it: its pixels, and the colour drawn at a point of the data."""

from __future__ import annotations

from typing import Any

import numpy as np


def rendered(figure: Any) -> np.ndarray:
    """The figure drawn: (H, W, 3) int RGB."""
    figure.canvas.draw()
    return np.asarray(figure.canvas.buffer_rgba())[..., :3].astype(int)


def colour_at(pixels: np.ndarray, ax: Any, x: float, y: float) -> np.ndarray:
    """The RGB of ``pixels`` (``rendered``) where ``ax`` draws the data point (x, y)."""
    column, row = ax.transData.transform((x, y))
    return pixels[len(pixels) - int(round(row)), int(round(column))]
