"""Training-time augmentation on the device: a random affine (and elastic) warp per image, one grid_sample a batch."""

from __future__ import annotations

import math
import random
from typing import Annotated

import torch
import torch.nn.functional as F
from pydantic import ConfigDict, Field, NonNegativeFloat
from typing_extensions import TypedDict

# Control points of the elastic displacement field: ~7 px apart on a 28 px digit, the length over
# which Simard et al. (2003) smooth theirs (a Gaussian of sigma 4-6 px), at a tenth of a blur's cost.
ELASTIC_POINTS = 5
SOFT_SIDES = (8, 16)  # px: a soft image is shrunk to a side in this range and enlarged back, as a small scan is


class Augment(TypedDict, total=False):
    """What ``data.augment`` may hold; a key left out is 0 (off)."""

    __pydantic_config__ = ConfigDict(strict=True, extra="forbid")  # type: ignore[misc]

    degrees: NonNegativeFloat  # rotation, up to this many degrees either way
    translate: Annotated[float, Field(ge=0, le=1)]  # shift, as a share of the side
    scale: Annotated[float, Field(ge=0, lt=1)]  # zoom in or out by up to this share
    elastic: NonNegativeFloat  # rubber-sheet warp, in pixels
    soft: Annotated[float, Field(ge=0, le=1)]  # the share of images blurred


def random_distortion(x: torch.Tensor, augment: Augment) -> torch.Tensor:
    """Each image of a (B, 1, H, W) batch warped (``warp``) and, a ``soft`` share of them, blurred (``soften``)."""
    degrees, translate, scale, elastic = (augment.get(key, 0) for key in ("degrees", "translate", "scale", "elastic"))
    if degrees or translate or scale or elastic:
        x = warp(x, degrees, translate, scale, elastic)
    return soften(x, augment["soft"]) if augment.get("soft") else x


def warp(x: torch.Tensor, degrees: float, translate: float, scale: float, elastic: float) -> torch.Tensor:
    """A different random rotation/shift/zoom, plus an optional elastic warp of up to ``elastic``
    pixels, for every image; one ``grid_sample`` for all of it."""
    b, _, h, w = x.shape
    u = lambda *shape: torch.rand(b, *shape, device=x.device) * 2 - 1  # noqa: E731 - uniform in [-1, 1]
    angle = u() * math.radians(degrees)
    zoom = 1 + u() * scale
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack(
        [torch.stack([cos, -sin, u() * translate * 2], 1), torch.stack([sin, cos, u() * translate * 2], 1)], 1
    )
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    if elastic:
        # Random shifts at a coarse grid of points, smoothly interpolated: a rubber-sheet warp.
        shift = F.interpolate(
            u(2, ELASTIC_POINTS, ELASTIC_POINTS) * elastic, size=(h, w), mode="bicubic", align_corners=True
        )
        shift = shift.clamp(-elastic, elastic)  # bicubic overshoots its control points a little
        pixels_to_grid = torch.tensor([2 / w, 2 / h], device=x.device).view(1, 2, 1, 1)
        grid = grid + (shift * pixels_to_grid).permute(0, 2, 3, 1).to(x.dtype)
    return F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")


def soften(x: torch.Tensor, share: float) -> torch.Tensor:
    """About ``share`` of the images at a lower resolution: detail lost, strokes blurred (one side a batch)."""
    side = random.randint(*SOFT_SIDES)  # Python's generator: a tensor's would be a host sync every step
    small = F.interpolate(x, size=(side, side), mode="bilinear", antialias=True)
    soft = F.interpolate(small, size=x.shape[-2:], mode="bicubic", align_corners=False).clamp(0, 1)
    return torch.where(torch.rand(len(x), 1, 1, 1, device=x.device) < share, soft, x)
