"""Images to throw at the reading path: MNIST digits of 4-40 px enlarged to 28-1000 px, at down to 5 % of
the page's contrast, blurred, noisy, on white, grey, coloured and inverted pages; and the odd ones:
pages without a digit, one pixel, empty and cut-off files."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image, ImageFilter

from support.blank_pages import KINDS, blank_page

ODD = ("one pixel", "empty file", "cut off", "blank page")


def digit_image(digit: torch.Tensor, rng: np.random.Generator) -> Image.Image:
    """A (28, 28) uint8 MNIST digit as a user might send it: any size, contrast, blur, noise and page."""
    side = int(rng.integers(4, 41))
    filters = (Image.Resampling.NEAREST, Image.Resampling.BILINEAR, Image.Resampling.LANCZOS)
    small = Image.fromarray(digit.numpy()).resize((side, side), filters[rng.integers(3)])
    size = int(rng.integers(28, 1001))
    ink = np.asarray(small.resize((size, size), filters[rng.integers(3)]), np.float32) / 255
    page_shade = rng.uniform(0, 255, 3) if rng.uniform() < 0.3 else np.full(3, rng.uniform(30, 255))
    ink_shade = page_shade * (1 - rng.uniform(0.05, 1)) if page_shade.mean() > 60 else 255 - rng.uniform(0, 120, 3)
    rgb = page_shade * (1 - ink[..., None]) + ink_shade * ink[..., None]
    rgb += rng.normal(0, rng.choice([0, 2, 8]), rgb.shape)
    if rng.uniform() < 0.2:
        rgb = 255 - rgb
    image = Image.fromarray(rgb.clip(0, 255).astype(np.uint8))
    return image.filter(ImageFilter.GaussianBlur(rng.uniform(0, 3))) if rng.uniform() < 0.5 else image


def odd_image(kind: str, rng: np.random.Generator) -> bytes:
    if kind == "one pixel":
        return _png(Image.new("L", (1, 1), int(rng.integers(0, 256))))
    if kind == "empty file":
        return b""
    if kind == "cut off":
        whole = _png(Image.new("RGB", (64, 64), (255, 255, 255)))
        return whole[: int(rng.integers(8, len(whole) - 1))]
    return blank_page(KINDS[rng.integers(len(KINDS))], rng)


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def fuzz_images(digits: torch.Tensor, count: int, seed: int = 0) -> list[tuple[str, bytes]]:
    """``count`` (description, image file) pairs: a tenth odd ones, the rest digits drawn from ``digits``."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        if i % 10 == 9:
            kind = ODD[rng.integers(len(ODD))]
            out.append((f"#{i} {kind}", odd_image(kind, rng)))
        else:
            out.append((f"#{i} digit", _png(digit_image(digits[rng.integers(len(digits))], rng))))
    return out
