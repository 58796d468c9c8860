"""A user's photo or drawing of a digit -> a 28x28 digit made the way MNIST's were.

Phone photos bring what MNIST never had: a sideways EXIF orientation, grey paper, lighting
gradients, shadows, noise, coloured ink; scans and pencils bring soft, blurred strokes. The path:
upright (EXIF) -> ink map (the paper divided out) -> the digit's strokes (found by Otsu's threshold
and connected components, cut out with their soft edges) -> crisp strokes -> the MNIST look (thick
enough strokes, scaled to fit 20x20, centre of mass at the centre of 28x28).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError
from torchvision.transforms.functional import resize

from mnist_lab.data.mnist import SIDE
from mnist_lab.errors import ImageTooLarge, InputError, NotAnImage

WORK_SIDE = 800  # px: larger photos are shrunk first; the digit ends up 20 px tall anyway
PAPER_WINDOW = 0.12  # of the longest side: wider than a pen stroke, narrower than a shadow's soft edge
MIN_WINDOW = 15  # px: ... and, in a small image (MNIST's 28 px), wider than its 2-4 px strokes
DARK_PAPER = 0.25  # of the image's range of grey: paper at most this far above its darkest is dark paper
POLARITY_BLUR = 0.15  # of the longest side: the page's brightness around a stroke, wider than thick strokes
MIN_INK = 0.15  # of the page's brightness: light marks on dark paper fainter than this are glare, not ink
FRAME = 0.02  # of the longest side: the border left out when looking for ink (a page's edge, a scan's frame)
INK_BLUR = 0.005  # of the longest side: noise is averaged away over this, strokes are wider
MIN_CONTRAST = 0.04  # of the page's brightness: the faintest ink, ...
MIN_SNR = 8  # ... and how many times the bare paper's noise it must stand out by
NEAR_DIGIT = 0.25  # strokes count as the digit's if this close to its largest stroke (of that stroke's size)
MIN_PART = 0.005  # ... and at least this fraction of its area (dots of noise are not)
SOFT_EDGE = 0.15  # of the digit's size: how far a blurred stroke's soft edge may reach beyond the threshold
PAPER_INK = 99  # percentile: the faint ink bare paper shows (texture, noise), taken off the digit's
NEARBY = 0.15  # of the digit's size: a stroke is as dark as the darkest ink this close is ...
SHARP = (0.4, 0.8)  # ... if it reaches 0.8 of it, no stroke below 0.4: crisp edges where blur left ramps
FAINTEST = 0.3  # no ink is compared with a neighbour fainter than this
DIGIT_BOX = 20  # px: MNIST digits were scaled to fit 20x20, then centred by mass in 28x28
STROKE_WIDTH = 2  # px: MNIST's strokes in that box
STROKE_LEVEL = 0.3  # ink above this counts as stroke when measuring a pen line's width
STROKE_LENGTH = 2.5  # a digit's strokes, laid end to end, are about this many times its height
NO_DIGIT = "no digit found: the image is blank or has almost no contrast"


def open_image(source: Path | bytes, max_pixels: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB, upright as the camera meant it, transparency as white paper.

    Refuses what is not an image, and images over ``max_pixels``, from the header: before decoding."""
    try:
        with warnings.catch_warnings():  # PIL's own bomb warning; max_pixels below says what to do
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
        pixels = img.width * img.height
        if pixels <= max_pixels:
            img.load()
    except UnidentifiedImageError:
        raise NotAnImage("not an image: no image format Pillow reads (PNG, JPEG, GIF, WebP, ...)") from None
    except Image.DecompressionBombError as err:  # a frame or layer larger than its header says
        raise ImageTooLarge(f"image too large ({err}); raise max_pixels if it is genuine") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise InputError(f"not a readable image ({type(err).__name__}: {err})") from None
    if pixels > max_pixels:
        raise ImageTooLarge(
            f"image too large ({img.width}x{img.height} = {pixels} pixels, over the limit of {max_pixels}); "
            "shrink it, or raise max_pixels if it is genuine"
        )
    img = ImageOps.exif_transpose(img)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = Image.alpha_composite(Image.new("RGBA", img.size, "white"), img.convert("RGBA"))
    return np.asarray(img.convert("RGB"))


def dark_ink(image: np.ndarray) -> np.ndarray:
    """(H, W) uint8, ink dark on light paper, the longest side at most WORK_SIDE, from (H, W, 3) RGB or (H, W) grey."""
    # Coloured ink is dark in one channel at least, white paper in none (cv2.min: 20x numpy's min over axis 2).
    gray = image if image.ndim == 2 else cv2.min(cv2.min(image[..., 0], image[..., 1]), image[..., 2])
    shrink = WORK_SIDE / max(gray.shape)
    if shrink < 1:
        gray = cv2.resize(gray, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
    # Ink is what stands out most from the page's brightness around it, darker or lighter.
    h, w = gray.shape
    small = cv2.resize(gray, (max(1, w // 8), max(1, h // 8)), interpolation=cv2.INTER_AREA).astype(np.float32)
    page = cv2.resize(cv2.GaussianBlur(small, (0, 0), POLARITY_BLUR * max(small.shape)), gray.shape[::-1])
    darkest, lightest = np.percentile(gray - page, [0.2, 99.8])
    # Light ink on dark paper only when clearly so: a blank page's glare is no ink. Or when most of the image, the
    # paper, lies at the dark end of its range: in a small image (MNIST's own 28x28) the page's blur sees only ink.
    low, middle, high = np.percentile(gray, [1, 50, 99])
    mostly_dark = high - low > 255 * MIN_INK and middle < low + DARK_PAPER * (high - low)
    if lightest > max(-2 * darkest, 255 * MIN_INK) or mostly_dark:
        gray = 255 - gray
    return gray


def smooth(image: np.ndarray, sigma: float) -> np.ndarray:
    """A wide Gaussian blur, float32, done on an image shrunk to sigma/2 px a pixel: 30x faster, as smooth."""
    h, w = image.shape
    shrink = max(1, int(sigma // 2))
    small = cv2.resize(image, (max(1, w // shrink), max(1, h // shrink)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small.astype(np.float32), (0, 0), sigma / shrink)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def ink_map(gray: np.ndarray) -> np.ndarray:
    """How much ink each pixel of a ``dark_ink`` image holds, float32 in [0, 1]: how much darker it is than the
    paper around it, as a share of the paper's brightness (light and shadows divided out)."""
    k = max(int(PAPER_WINDOW * max(gray.shape)), MIN_WINDOW) | 1
    # A closing (max then min filter) wipes out strokes thinner than k: what is left is the paper. Outside the
    # image the paper goes on as it ends, padded by hand: OpenCV's own border, a new one for each filter, would
    # make the dark end of a gradient a valley, and the closing would take it for ink.
    h, w = gray.shape
    specks_out = cv2.medianBlur(gray, 3)  # a light speck would be taken for the paper
    padded = cv2.copyMakeBorder(specks_out, k, k, k, k, cv2.BORDER_REPLICATE)  # the closing reaches k/2 twice
    paper = cv2.morphologyEx(padded, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    paper = smooth(paper, k / 4)[k : k + h, k : k + w]
    # A pen stroke wider than k stays in the closing as paper darker than the page: all ink. (A page that is all
    # ink is then blank: no contrast.)
    return 1 - np.clip(gray.astype(np.float32) / np.maximum(paper, 1), 0, 1)


def digit_parts(mask: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The connected parts of a thresholded ink mask that make the digit, and their box (left, top, right, bottom):
    the largest part, and every part of some size near the box of those kept, until none is added."""
    _, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    lefts, tops, widths, heights, areas = stats[1:].T  # row 0 is the background
    rights, bottoms = lefts + widths, tops + heights
    near = np.arange(len(areas)) == np.argmax(areas)
    while True:
        box = lefts[near].min(), tops[near].min(), rights[near].max(), bottoms[near].max()
        margin = NEAR_DIGIT * max(box[2] - box[0], box[3] - box[1])
        grown = (
            (areas >= MIN_PART * areas.max())
            & (rights >= box[0] - margin)
            & (lefts <= box[2] + margin)
            & (bottoms >= box[1] - margin)
            & (tops <= box[3] + margin)
        ) | near
        if (grown == near).all():
            return np.isin(labels, 1 + np.flatnonzero(near)).astype(np.uint8), box
        near = grown


def blank(ink: np.ndarray) -> bool:
    """Whether an ink map holds no stroke: its marks, cleaned of specks and noise, stand out from the bare paper by
    less than MIN_CONTRAST of the page, or by less than MIN_SNR times the paper's own noise."""
    margin = int(FRAME * max(ink.shape))
    inner = ink[margin : ink.shape[0] - margin, margin : ink.shape[1] - margin]
    side = max(inner.shape)
    clean = cv2.GaussianBlur(cv2.medianBlur(inner, 5 if side > 200 else 3), (0, 0), max(0.5, INK_BLUR * side))
    if clean.max() < MIN_CONTRAST:
        return True
    _, marks = cv2.threshold((clean / clean.max() * 255).astype(np.uint8), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    bare = clean[cv2.dilate(marks, np.ones((5, 5), np.uint8)) == 0]
    if not bare.size or not marks.any():
        return True
    paper = np.median(bare)
    contrast, noise = np.median(clean[marks > 0]) - paper, 1.4826 * np.median(np.abs(bare - paper))
    return bool(contrast < max(MIN_CONTRAST, MIN_SNR * noise))


def digit_strokes(ink: np.ndarray) -> np.ndarray:
    """The digit cut out of an ink map: its bounding box, grey levels kept, other marks and noise zeroed."""
    if blank(ink):
        raise InputError(NO_DIGIT)
    _, mask = cv2.threshold((ink * 255).astype(np.uint8), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    parts, (left, top, right, bottom) = digit_parts(mask)
    # The threshold cuts a soft or blurred stroke in half: keep the ink around the parts too, above the
    # paper's own faint ink (its texture and noise, measured away from every mark).
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (int(SOFT_EDGE * max(right - left, bottom - top)) | 1,) * 2)
    around = cv2.dilate(parts, disk)
    bare = cv2.dilate(mask, np.ones(disk.shape, np.uint8)) == 0  # a square: 3x faster than the disk, as far
    paper = np.percentile(ink[bare], PAPER_INK) if bare.any() else 0
    digit = np.clip(ink - paper, 0, None) * around
    full = np.percentile(digit[parts > 0], 90)  # full strokes are 1, as in MNIST
    if full <= 0:  # the paper's noise is as dark as the strokes
        raise InputError(NO_DIGIT)
    rows, cols = np.flatnonzero(digit.max(1) > 0), np.flatnonzero(digit.max(0) > 0)
    return np.clip(digit[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] / full, 0, 1)


def sharpen(digit: np.ndarray) -> np.ndarray:
    """A soft or blurred digit with MNIST's crisp strokes: each pixel's ink against the darkest ink near it,
    so a faint thin stroke stays as strong as a thick one."""
    k = int(NEARBY * max(digit.shape)) | 1
    darkest = cv2.dilate(digit, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    low, high = SHARP
    return np.clip((digit / np.maximum(darkest, FAINTEST) - low) / (high - low), 0, 1).astype(np.float32)


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
    ink = ink_map(dark_ink(rgb))
    return mnist_look(torch.from_numpy(sharpen(digit_strokes(ink))))


def to_picture(rgb: np.ndarray, side: int = SIDE) -> torch.Tensor:
    """An image (H, W, 3) or (H, W) uint8 -> the whole picture (side, side) in [0, 1], as Fashion-MNIST made its
    own: gray, the subject light on a dark ground (inverted when the border is the lighter), its longest side
    fitted to ``side`` and centred."""
    gray = rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if border.mean() > gray.mean():
        gray = 255 - gray
    h, w = gray.shape
    scale = side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    fitted = cv2.resize(gray, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    out = np.zeros((side, side), np.uint8)
    top, left = (side - size[1]) // 2, (side - size[0]) // 2
    out[top : top + size[1], left : left + size[0]] = fitted
    return torch.from_numpy(out).float() / 255
