"""Soft and blurry digits for tests and bench/reading.py: a small scan enlarged, a soft pencil, an
out-of-focus photo. An MNIST test digit, dark on light, shrunk to ``side`` px and enlarged again; the
smaller ``side``, the blurrier.

Two recipes: issue 24's (shrunk bilinearly, enlarged bicubically to 100 px, laid on a grey page at a
random place) and a harsher one (shrunk with Lanczos' filter, enlarged to 280 px, a white page)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

PAGE = (320, 240)  # width, height
ENLARGED = 100  # px
PAPER = (200, 256)  # the page's grey level
HARSH_SIDE = 280  # px: the harsher recipe's page, the digit enlarged to fill it

Page = Callable[[torch.Tensor, int, np.random.Generator], Image.Image]


def soft_page(digit: torch.Tensor, side: int, rng: np.random.Generator) -> Image.Image:
    """A (28, 28) uint8 MNIST digit as a blurry dark digit on a grey page (mode L)."""
    small = Image.fromarray(digit.numpy()).resize((side, side), Image.Resampling.BILINEAR)
    big = np.asarray(small.resize((ENLARGED, ENLARGED), Image.Resampling.BICUBIC), np.float32) / 255
    w, h = PAGE
    page = np.full((h, w), rng.integers(*PAPER), np.float32)
    top, left = int(rng.integers(0, h - ENLARGED)), int(rng.integers(0, w - ENLARGED))
    patch = page[top : top + ENLARGED, left : left + ENLARGED]
    page[top : top + ENLARGED, left : left + ENLARGED] = patch * (1 - big)  # ink darkens the paper under it
    return Image.fromarray(page.round().astype(np.uint8))


def harsh_page(digit: torch.Tensor, side: int, rng: np.random.Generator) -> Image.Image:
    """A (28, 28) uint8 MNIST digit shrunk with Lanczos' filter, enlarged to a 280 px white page (mode L)."""
    small = Image.fromarray(255 - digit.numpy()).resize((side, side), Image.Resampling.LANCZOS)
    return small.resize((HARSH_SIDE, HARSH_SIDE), Image.Resampling.BICUBIC)


def write_soft(
    images: torch.Tensor, labels: torch.Tensor, side: int, folder: Path, seed: int = 0, page: Page = soft_page
) -> list[tuple[Path, int]]:
    """One PNG per digit, shrunk to ``side`` px before enlarging."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, (digit, label) in enumerate(zip(images, labels)):
        path = folder / f"{i:04d}_label{int(label)}.png"
        page(digit, side, rng).save(path)
        out.append((path, int(label)))
    return out
