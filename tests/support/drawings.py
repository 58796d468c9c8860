"""Realistic digit drawings for tests and the predict benchmark: MNIST test digits re-rendered
large, black ink on white paper, off-centre, with thin or thick strokes, as PNG or JPEG."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image


def render(
    digit: torch.Tensor, size: int, stroke: int, canvas: tuple[int, int], offset: tuple[int, int]
) -> Image.Image:
    """A (28, 28) uint8 MNIST digit drawn as black strokes on a white canvas (width, height)."""
    big = F.interpolate(digit[None, None].float() / 255, size=(size, size), mode="bilinear", align_corners=False)
    ink = (big > 0.5).float()
    if stroke > 0:  # thicker pen
        ink = F.max_pool2d(ink, 2 * stroke + 1, stride=1, padding=stroke)
    elif stroke < 0:  # thinner pen
        ink = -F.max_pool2d(-ink, -2 * stroke + 1, stride=1, padding=-stroke)
    paper = Image.new("L", canvas, 255)
    paper.paste(Image.fromarray(((1 - ink[0, 0]) * 255).byte().numpy()), offset)
    return paper


def write_drawings(images: torch.Tensor, labels: torch.Tensor, folder: Path, seed: int = 0) -> list[tuple[Path, int]]:
    gen = torch.Generator().manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, (digit, label) in enumerate(zip(images, labels)):
        size = int(torch.randint(120, 320, (1,), generator=gen))
        stroke = int(torch.randint(-2, 6, (1,), generator=gen)) * size // 200
        canvas = (
            size + int(torch.randint(40, 400, (1,), generator=gen)),
            size + int(torch.randint(40, 300, (1,), generator=gen)),
        )
        offset = (
            int(torch.randint(0, canvas[0] - size, (1,), generator=gen)),
            int(torch.randint(0, canvas[1] - size, (1,), generator=gen)),
        )
        img = render(digit, size, stroke, canvas, offset)
        path = folder / f"{i:04d}_label{int(label)}.{'jpg' if i % 3 == 0 else 'png'}"
        (img.convert("RGB") if i % 5 == 0 else img).save(path)
        out.append((path, int(label)))
    return out


CANVAS = 280  # px: the page's drawing canvas (serve.py)


def write_canvas_drawings(
    images: torch.Tensor, labels: torch.Tensor, folder: Path, seed: int = 0
) -> list[tuple[Path, int]]:
    """Digits as drawn on the page's canvas: black strokes 8-40 px wide on white, as PNG."""
    gen = torch.Generator().manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, (digit, label) in enumerate(zip(images, labels)):
        size = int(torch.randint(150, 260, (1,), generator=gen))
        # pens 12-40 px wide, at most a sixth of the digit's height: wider ones fill a small digit's loops
        stroke = int(torch.randint(-size // 100, size // 30 + 1, (1,), generator=gen))
        offset = tuple(int(v) for v in torch.randint(0, CANVAS - size + 1, (2,), generator=gen))
        path = folder / f"{i:04d}_label{int(label)}.png"
        render(digit, size, stroke, (CANVAS, CANVAS), offset).save(path)
        out.append((path, int(label)))
    return out
