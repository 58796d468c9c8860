"""A user's photo or drawing of a digit -> a 28x28 digit made the way MNIST's were.

Phone photos bring what MNIST never had: a sideways EXIF orientation, grey paper, lighting
gradients, shadows, noise, coloured ink. The path: upright (EXIF) -> ink map (the paper divided
out) -> the digit's strokes (Otsu's threshold, connected components) -> the MNIST look (thick
enough strokes, scaled to fit 20x20, centre of mass at the centre of 28x28).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError
from torchvision.transforms.functional import resize

from mnist_lab.data.mnist import SIDE
from mnist_lab.errors import InputError

WORK_SIDE = 800  # px: larger photos are shrunk first; the digit ends up 20 px tall anyway
PAPER_WINDOW = 0.08  # of the longest side: wider than a pen stroke, narrower than a shadow's soft edge
POLARITY_BLUR = 0.15  # of the longest side: the page's brightness around a stroke, wider than thick strokes
MIN_INK = 0.15  # what Otsu's threshold calls ink is paper texture and noise if this faint on average
NEAR_DIGIT = 0.25  # strokes count as the digit's if this close to its largest stroke (of that stroke's size)
MIN_PART = 0.005  # ... and at least this fraction of its area (dots of noise are not)
DIGIT_BOX = 20  # px: MNIST digits were scaled to fit 20x20, then centred by mass in 28x28
STROKE_WIDTH = 2  # px: MNIST's strokes in that box
STROKE_LEVEL = 0.3  # ink above this counts as stroke when measuring a pen line's width
STROKE_LENGTH = 2.5  # a digit's strokes, laid end to end, are about this many times its height


def open_image(path: Path, max_pixels: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB, upright as the camera meant it, transparency as white paper.

    Refuses non-images and decompression bombs before decoding."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = max_pixels
            img = Image.open(path)
            img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise InputError(f"image too large ({err}); raise max_pixels if it is genuine") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise InputError(f"not a readable image ({type(err).__name__}: {err})") from None
    img = ImageOps.exif_transpose(img)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = Image.alpha_composite(Image.new("RGBA", img.size, "white"), img.convert("RGBA"))
    return np.asarray(img.convert("RGB"))


def dark_ink(rgb: np.ndarray) -> np.ndarray:
    """(H, W) uint8, ink dark on light paper, the longest side at most WORK_SIDE."""
    gray = rgb.min(axis=2)  # coloured ink is dark in at least one channel; white paper in none
    shrink = WORK_SIDE / max(gray.shape)
    if shrink < 1:
        gray = cv2.resize(gray, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
    # Ink is what stands out most from the page's brightness around it, darker or lighter.
    h, w = gray.shape
    small = cv2.resize(gray, (max(1, w // 8), max(1, h // 8)), interpolation=cv2.INTER_AREA).astype(np.float32)
    page = cv2.resize(cv2.GaussianBlur(small, (0, 0), POLARITY_BLUR * max(small.shape)), gray.shape[::-1])
    darkest, lightest = np.percentile(gray - page, [0.2, 99.8])
    # Light ink on dark paper (MNIST itself) only when clearly so: a blank page's glare is no ink.
    if lightest > max(-2 * darkest, 255 * MIN_INK):
        gray = 255 - gray
    return gray


def ink_map(gray: np.ndarray) -> np.ndarray:
    """How much ink each pixel of a ``dark_ink`` image holds, float32 in [0, 1]: the paper, with
    its light and shadows, divided out."""
    k = int(PAPER_WINDOW * max(gray.shape)) | 1
    # A closing (max then min filter) wipes out strokes thinner than k: what is left is the paper.
    paper = cv2.morphologyEx(gray, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    paper = cv2.GaussianBlur(paper, (0, 0), k / 4).astype(np.float32)
    return 1 - np.clip(gray.astype(np.float32) / np.maximum(paper, 1), 0, 1)


def digit_strokes(ink: np.ndarray) -> np.ndarray:
    """The digit cut out of an ink map: its bounding box, grey levels kept, other marks and noise zeroed."""
    level, mask = cv2.threshold((ink * 255).astype(np.uint8), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    if not mask.any() or ink[mask > 0].mean() < MIN_INK:
        raise InputError("no digit found: the image is blank or has almost no contrast")
    _, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    lefts, tops, widths, heights, areas = stats[1:].T  # row 0 is the background
    rights, bottoms = lefts + widths, tops + heights
    main = int(np.argmax(areas))
    margin = NEAR_DIGIT * max(widths[main], heights[main])
    near = (
        (areas >= MIN_PART * areas[main])
        & (rights >= lefts[main] - margin)
        & (lefts <= rights[main] + margin)
        & (bottoms >= tops[main] - margin)
        & (tops <= bottoms[main] + margin)
    )
    keep = np.isin(labels, 1 + np.flatnonzero(near)).astype(np.uint8)
    left, top, right, bottom = lefts[near].min(), tops[near].min(), rights[near].max(), bottoms[near].max()
    keep = cv2.dilate(keep, np.ones((3, 3), np.uint8))  # the strokes' soft edges, below the threshold
    digit = (ink * keep)[top:bottom, left:right]
    return np.clip(digit / np.percentile(digit[digit * 255 > level], 90), 0, 1)  # full strokes are 1, as in MNIST


def thicken(digit: torch.Tensor) -> torch.Tensor:
    """A thin pen line grown so that it is about STROKE_WIDTH px wide once the digit fits DIGIT_BOX."""
    h, w = digit.shape
    width = int((digit > STROKE_LEVEL).sum()) / (STROKE_LENGTH * max(h, w))  # stroke area / stroke length
    grow = int(STROKE_WIDTH * max(h, w) / DIGIT_BOX - width)
    if grow < 2:
        return digit
    k = grow | 1
    return F.max_pool2d(digit[None, None], k, stride=1, padding=k // 2)[0, 0]


def centre_by_mass(digit: torch.Tensor) -> torch.Tensor:
    """A digit that fits DIGIT_BOX placed in SIDE x SIDE with its centre of mass at the centre."""
    h, w = digit.shape
    ys, xs = torch.arange(h, dtype=torch.float), torch.arange(w, dtype=torch.float)
    mass = digit.sum()
    cy, cx = float((digit.sum(1) * ys).sum() / mass), float((digit.sum(0) * xs).sum() / mass)
    top, left = min(max(round(SIDE / 2 - cy), 0), SIDE - h), min(max(round(SIDE / 2 - cx), 0), SIDE - w)
    out = torch.zeros(SIDE, SIDE)
    out[top : top + h, left : left + w] = digit
    return out


def mnist_look(digit: torch.Tensor) -> torch.Tensor:
    """A cropped digit (H, W) in [0, 1], ink high -> (28, 28) as MNIST made theirs."""
    h, w = digit.shape
    scale = DIGIT_BOX / max(h, w)
    size = [max(1, round(h * scale)), max(1, round(w * scale))]
    digit = resize(thicken(digit)[None], size, antialias=True)[0].clamp(min=0)
    return centre_by_mass(digit / digit.max())


def to_mnist(rgb: np.ndarray) -> torch.Tensor:
    """An image (H, W, 3) or (H, W) uint8 -> the (28, 28) MNIST-style digit in [0, 1] the network expects."""
    ink = ink_map(dark_ink(rgb if rgb.ndim == 3 else rgb[..., None]))
    return mnist_look(torch.from_numpy(digit_strokes(ink)).float())
