"""Phone-photo-like pictures of MNIST test digits, for tests and bench/reading.py: ink (black or
blue) on grey paper, under a lighting gradient and 0-2 soft shadows, blurred, noisy, saved as JPEG,
some stored sideways with an EXIF orientation tag, as phones do."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter

PAGE = (640, 480)  # width, height
INKS = {"black": (25, 25, 30), "blue": (25, 45, 150)}
EXIF_ORIENTATION = 0x0112
STORED_SIDEWAYS = {
    6: Image.Transpose.ROTATE_90,
    8: Image.Transpose.ROTATE_270,
}  # the tag, and how the pixels are stored


def lighting(rng: np.random.Generator) -> np.ndarray:
    """(H, W) brightness: a linear gradient in a random direction times 0-2 soft shadows."""
    w, h = PAGE
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    ramp = (math.cos(angle) * (xx - w / 2) + math.sin(angle) * (yy - h / 2)) / (w / 2)
    light = 1 + rng.uniform(0.1, 0.3) * ramp
    for _ in range(rng.integers(0, 3)):
        cx, cy, ax, ay = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(80, 300), rng.uniform(80, 300)
        inside = (((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2 < 1).astype(np.float32)
        soft = np.asarray(
            Image.fromarray((inside * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(rng.uniform(20, 50)))
        )
        light *= 1 - rng.uniform(0.2, 0.45) * soft / 255
    return light


def photo(digit: torch.Tensor | None, rng: np.random.Generator) -> Image.Image:
    """A (28, 28) uint8 MNIST digit written on a page (None: a blank page) and photographed, upright, as RGB."""
    w, h = PAGE
    if digit is None:
        digit = torch.zeros(28, 28, dtype=torch.uint8)
    size = int(rng.integers(120, 281))
    big = F.interpolate(digit[None, None].float() / 255, size=(size, size), mode="bilinear", align_corners=False)
    stroke = int(rng.integers(0, 3)) * size // 100  # 0 to ~5 px thicker than MNIST's pen
    if stroke:
        big = F.max_pool2d(big, 2 * stroke + 1, stride=1, padding=stroke)
    alpha = np.zeros((h, w), np.float32)
    top, left = int(rng.integers(0, h - size)), int(rng.integers(0, w - size))
    alpha[top : top + size, left : left + size] = big[0, 0].clamp(0, 1).numpy() * rng.uniform(0.75, 1.0)
    paper = np.array([1.0, 0.97, 0.92]) * rng.uniform(170, 235)  # slightly warm
    ink = np.array(INKS[rng.choice(list(INKS))], np.float32)
    rgb = (paper * (1 - alpha[..., None]) + ink * alpha[..., None]) * lighting(rng)[..., None]
    rgb += rng.normal(0, rng.uniform(2, 8), rgb.shape)
    image = Image.fromarray(rgb.clip(0, 255).astype(np.uint8))
    return image.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.5)))


def write_photos(images: torch.Tensor, labels: torch.Tensor, folder: Path, seed: int = 0) -> list[tuple[Path, int]]:
    """One JPEG per digit (quality 70-95); a quarter stored sideways with EXIF orientation 6 or 8."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, (digit, label) in enumerate(zip(images, labels)):
        image, exif = photo(digit, rng), Image.Exif()
        if rng.uniform() < 0.25:
            tag = int(rng.choice(list(STORED_SIDEWAYS)))
            image, exif[EXIF_ORIENTATION] = image.transpose(STORED_SIDEWAYS[tag]), tag
        path = folder / f"{i:04d}_label{int(label)}.jpg"
        image.save(path, quality=int(rng.integers(70, 96)), exif=exif)
        out.append((path, int(label)))
    return out
