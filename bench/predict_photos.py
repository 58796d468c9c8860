"""Accuracy of predict.py's preprocessing on phone-photo-like pictures and on clean drawings.

    python bench/predict_photos.py ckpt_path=<file.ckpt> [n=1000] [save=sheet.png]

Renders ``n`` photos (mnist_lab/testing/photos.py) and ``n`` drawings (mnist_lab/testing/drawings.py) of MNIST test
digits the network never trained on, prepares each as predict.py does, and classifies them.
``save`` writes the first 48 photos' 28x28 inputs, as the network saw them, to a PNG.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch
from torchvision.utils import save_image

from mnist_lab.data.mnist import SHIPPED_DIR, load_mnist
from mnist_lab.inference.prediction import classify
from mnist_lab.inference.preprocess import InputError, open_image, to_mnist
from mnist_lab.models.classifier import load_classifier
from mnist_lab.testing.drawings import write_drawings
from mnist_lab.testing.photos import write_photos


def accuracy(model, files: list[tuple[Path, int]]) -> tuple[float, int, torch.Tensor]:
    """Share predicted right (an input with no digit found counts as wrong), how many had none, the inputs."""
    inputs, labels, missing = [], [], 0
    for path, label in files:
        try:
            inputs.append(to_mnist(open_image(path, 40_000_000)))
            labels.append(label)
        except InputError:
            missing += 1
    x = torch.stack(inputs)
    hits = int((classify(model, x).argmax(-1) == torch.tensor(labels)).sum())
    return hits / len(files), missing, x


def main() -> None:
    args = dict(arg.split("=", 1) for arg in sys.argv[1:])
    model, n = load_classifier(args["ckpt_path"]), int(args.get("n", 1000))
    test = load_mnist(SHIPPED_DIR, download=False)
    digits, labels = test["test_x"][:n], test["test_y"][:n]
    with tempfile.TemporaryDirectory() as tmp:
        for name, write in (("photos", write_photos), ("drawings", write_drawings)):
            files = write(digits, labels, Path(tmp) / name)
            start = time.perf_counter()
            acc, missing, x = accuracy(model, files)
            ms = 1000 * (time.perf_counter() - start) / n
            print(
                f"{name:<9} {n} images: {100 * acc:.1f} % right, {missing} without a digit found, {ms:.0f} ms an image"
            )
            if name == "photos" and "save" in args:
                save_image(x[:48, None], args["save"], nrow=12, padding=2, pad_value=0.5)


if __name__ == "__main__":
    main()
