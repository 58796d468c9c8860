"""What ``python predict.py`` does: recognise a user's digit images the way MNIST digits were made."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterable, Optional

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torchvision.utils import save_image

from mnist_lab.config import ConfigError, require
from mnist_lab.data import SHIPPED_DIR, load_mnist, read_digit_csv
from mnist_lab.module import DigitClassifier, load_classifier
from mnist_lab.preprocess import InputError, open_image, to_mnist

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}


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
            x = to_mnist(open_image(file, cfg.max_pixels))
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
