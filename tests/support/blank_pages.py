"""Pages without a digit, which the reading path must refuse as blank: every shade of paper, coloured and
inverted pages, lighting gradients and shadows, noise of several kinds, photographed blank paper, and
images of a few pixels."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from support.photos import lighting, photo

KINDS = ("flat", "colour", "gradient", "shadowed", "noise", "speckle", "photo", "tiny")


def _flat(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    shade = (0, 255, int(rng.integers(0, 256)))[rng.integers(3)]  # black and white pages as often as any grey
    return np.full((*size[::-1], 3), shade, np.float32)


def _colour(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    return np.broadcast_to(rng.integers(0, 256, 3), (*size[::-1], 3)).astype(np.float32)


def _gradient(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    w, h = size
    start, end = rng.integers(0, 256, 2)
    ramp = np.linspace(start, end, w if rng.uniform() < 0.5 else h, dtype=np.float32)
    ramp = np.broadcast_to(ramp[None, :], (h, w)) if len(ramp) == w else np.broadcast_to(ramp[:, None], (h, w))
    return np.repeat(ramp[..., None], 3, axis=2)


def _shadowed(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    return _flat(rng, (640, 480)) * lighting(rng)[..., None]  # photos.lighting is drawn at its page size


def _noise(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    base = _flat(rng, size) if rng.uniform() < 0.5 else _gradient(rng, size)
    if rng.uniform() < 0.3:  # all noise: any grey level anywhere
        return rng.uniform(0, 256, base.shape[:2])[..., None].repeat(3, 2)
    return base + rng.normal(0, rng.uniform(2, 40), base.shape[:2])[..., None]


def _speckle(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    page = _flat(rng, size)
    dots = rng.uniform(size=page.shape[:2]) < rng.uniform(0.0005, 0.02)
    page[dots] = 255 - page[dots]
    return page


def blank_page(kind: str, rng: np.random.Generator) -> bytes:
    """A PNG (or, for photos, a JPEG) of one kind of page without a digit."""
    if kind == "photo":
        out = io.BytesIO()
        photo(None, rng).save(out, "JPEG", quality=int(rng.integers(70, 96)))
        return out.getvalue()
    size = (int(rng.integers(1, 5)), int(rng.integers(1, 5))) if kind == "tiny" else tuple(rng.integers(28, 700, 2))
    pixels = {"tiny": _flat, "flat": _flat, "colour": _colour, "gradient": _gradient, "shadowed": _shadowed}
    pixels |= {"noise": _noise, "speckle": _speckle}
    image = Image.fromarray(pixels[kind](rng, size).clip(0, 255).astype(np.uint8))
    out = io.BytesIO()
    (image.convert("L") if rng.uniform() < 0.5 else image).save(out, "PNG")
    return out.getvalue()


def blank_pages(count: int, seed: int = 0) -> list[tuple[str, bytes]]:
    """``count`` pages, the kinds in turn: (kind, image file)."""
    rng = np.random.default_rng(seed)
    return [(KINDS[i % len(KINDS)], blank_page(KINDS[i % len(KINDS)], rng)) for i in range(count)]
