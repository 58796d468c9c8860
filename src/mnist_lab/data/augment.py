"""Training-time augmentation on the device: a random affine (and elastic) warp per image, one grid_sample a batch."""

from __future__ import annotations

import inspect
import math

import torch
import torch.nn.functional as F

# Control points of the elastic displacement field: ~7 px apart on a 28 px digit, the length over
# which Simard et al. (2003) smooth theirs (a Gaussian of sigma 4-6 px), at a tenth of a blur's cost.
ELASTIC_POINTS = 5


def random_distortion(
    x: torch.Tensor, degrees: float = 0, translate: float = 0, scale: float = 0, elastic: float = 0
) -> torch.Tensor:
    """A different random rotation/shift/zoom, plus an optional elastic warp of up to ``elastic``
    pixels, for every image of a (B, 1, H, W) batch; one ``grid_sample`` for all of it."""
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


AUGMENT_KEYS = set(inspect.signature(random_distortion).parameters) - {"x"}  # what data.augment may hold
