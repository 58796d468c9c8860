"""What ``python predict.py`` does: recognise a user's digit images the way MNIST digits were made."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path
from typing import Iterable, Optional

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from PIL import Image, UnidentifiedImageError
from torchvision.transforms.functional import pil_to_tensor, resize
from torchvision.utils import save_image

from mnist_lab.config import ConfigError, require
from mnist_lab.data import SHIPPED_DIR, load_mnist, read_digit_csv
from mnist_lab.module import DigitClassifier, load_classifier

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}


class InputError(ValueError):
    """One input cannot be predicted; the others still are."""


def open_image(path: Path, max_pixels: int) -> Image.Image:
    """Open an image as greyscale, refusing non-images and decompression bombs before decoding."""
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
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Transparent pixels count as paper, whatever colour they hide.
        img = img.convert("RGBA")
        paper = Image.new("RGBA", img.size, "white")
        img = Image.alpha_composite(paper, img)
    return img.convert("L")


def to_mnist(gray: torch.Tensor) -> torch.Tensor:
    """A greyscale image (H, W) of any size and polarity -> a (28, 28) MNIST-style digit in [0, 1].

    Like MNIST: white ink on black, cropped to the ink, scaled to fit 20x20 keeping the aspect
    ratio, and placed in 28x28 with its centre of mass at the centre.
    """
    x = gray.float() / 255
    background = torch.cat([x[0], x[-1], x[:, 0], x[:, -1]]).median()
    if background > 0.5:  # dark ink on light paper
        x, background = 1 - x, 1 - background
    if x.max() - background < 0.2:
        raise InputError("no digit found: the image is blank or has almost no contrast")
    x = ((x - background) / (x.max() - background)).clamp(0, 1)
    x = torch.where(x > 0.1, x, torch.zeros_like(x))  # paper texture and JPEG noise
    ink = torch.nonzero(x > 0.3)
    (top, left), (bottom, right) = ink.min(0).values, ink.max(0).values
    digit = x[top : bottom + 1, left : right + 1]
    h, w = digit.shape
    scale = 20 / max(h, w)
    # MNIST strokes are ~2 px wide in the 20 px box; thicken a thin pen line before shrinking it.
    thickness = len(ink) / (2.5 * max(h, w))
    grow = int(2 / scale - thickness)
    if grow >= 2:
        k = grow | 1
        digit = F.max_pool2d(digit[None, None], k, stride=1, padding=k // 2)[0, 0]
    size = [max(1, round(h * scale)), max(1, round(w * scale))]
    digit = resize(digit[None], size, antialias=True)[0].clamp(min=0)
    digit = digit / digit.max()
    ys, xs = torch.arange(size[0], dtype=torch.float), torch.arange(size[1], dtype=torch.float)
    mass = digit.sum()
    cy, cx = float((digit.sum(1) * ys).sum() / mass), float((digit.sum(0) * xs).sum() / mass)
    # MNIST put the centre of mass at pixel (14, 14), measured from 0.
    top, left = min(max(round(14 - cy), 0), 28 - size[0]), min(max(round(14 - cx), 0), 28 - size[1])
    out = torch.zeros(28, 28)
    out[top : top + size[0], left : left + size[1]] = digit
    return out


def image_paths(inputs: Iterable[str]) -> list[tuple[str, Optional[Path], Optional[str]]]:
    """Expand files and folders into (name, path, error) rows; a folder without images is an error row."""
    rows = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            rows += [(str(p), p, None) for p in found] or [(item, None, "folder holds no images (" + ", ".join(sorted(IMAGE_SUFFIXES)) + ")")]
        elif path.is_file():
            rows.append((item, path, None))
        else:
            rows.append((item, None, "no such file or folder"))
    return rows


@torch.no_grad()
def classify(model: DigitClassifier, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Probabilities (N, 10) for images (N, 28, 28) in [0, 1]."""
    return torch.cat([model(chunk[:, None]).float().softmax(-1) for chunk in images.split(batch_size)]) if len(images) else torch.empty(0, 10)


def top3(probs: torch.Tensor) -> str:
    p, d = probs.topk(3)
    return "  ".join(f"{int(di)}: {float(pi):.3f}" for di, pi in zip(d, p))


def predict(cfg: DictConfig) -> int:
    """Print a prediction per input; returns how many inputs failed."""
    path = require(cfg, "ckpt_path", "python predict.py ckpt_path=outputs/runs/<run>/checkpoints/last.ckpt inputs=[digit.png]")
    if not (cfg.inputs or cfg.test_index is not None or cfg.kaggle_csv):
        raise ConfigError("nothing to predict: give inputs=[a.png,folder/], test_index=N or kaggle_csv=test.csv")
    model = load_classifier(path)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows, failures = [], 0

    for name, file, error in image_paths(cfg.inputs or []):
        try:
            if error:
                raise InputError(error)
            x = to_mnist(pil_to_tensor(open_image(file, cfg.max_pixels))[0])
        except InputError as err:
            print(f"{name}: error: {err}")
            failures += 1
            continue
        probs = classify(model, x[None])[0]
        rows.append({"input": name, "digit": int(probs.argmax()), "probability": round(float(probs.max()), 4)})
        print(f"{name}: {rows[-1]['digit']}   (top 3  {top3(probs)})")
        if cfg.save_inputs:
            (out / "inputs").mkdir(exist_ok=True)
            save_image(x, out / "inputs" / f"{len(rows):04d}_{Path(name).stem}.png")

    if cfg.test_index is not None:
        test = load_mnist(Path(cfg.data_dir) if cfg.data_dir else SHIPPED_DIR)
        indices = [cfg.test_index] if isinstance(cfg.test_index, int) else list(cfg.test_index)
        for i in indices:
            if not 0 <= i < len(test["test_y"]):
                print(f"test_index={i}: error: the test set has images 0..{len(test['test_y']) - 1}")
                failures += 1
                continue
            x = test["test_x"][i].float() / 255
            probs = classify(model, x[None])[0]
            image = out / f"test_{i}.png"
            save_image(F.interpolate(x[None, None], scale_factor=4), image)
            print(f"test image {i}: true {int(test['test_y'][i])}, predicted {int(probs.argmax())}   (top 3  {top3(probs)}); saved {image}")
            rows.append({"input": f"test[{i}]", "digit": int(probs.argmax()), "probability": round(float(probs.max()), 4)})

    if cfg.kaggle_csv:
        images, _ = read_digit_csv(Path(cfg.kaggle_csv))
        labels = classify(model, images.float() / 255).argmax(-1)
        with (out / "submission.csv").open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["ImageId", "Label"])
            writer.writerows((i + 1, int(label)) for i, label in enumerate(labels))
        print(f"{cfg.kaggle_csv}: {len(labels)} digits -> {out / 'submission.csv'}")

    if cfg.save_csv and rows:
        with (out / "predictions.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["input", "digit", "probability"])
            writer.writeheader()
            writer.writerows(rows)
        print(f"Wrote {out / 'predictions.csv'}")
    if failures:
        print(f"{failures} input(s) could not be predicted.")
    return failures
