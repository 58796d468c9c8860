"""MNIST itself: the copy shipped in the package and its checksums, its image size, classes and statistics."""

from __future__ import annotations

from pathlib import Path

import torch

from mnist_lab.data.idx import load_idx_folder

# The four official files, shipped inside the package: found wherever it is installed.
SHIPPED_DIR = Path(__file__).parent / "mnist_files"
SIDE = 28  # pixels: every image is SIDE x SIDE
DIGITS = [str(d) for d in range(10)]  # the class names; a checkpoint without its own classes has these
CLASSES = len(DIGITS)
# Training-set pixel statistics (of values in [0, 1]); the models normalise with them.
MEAN, STD = 0.1307, 0.3081
TRAIN_COUNT = 60_000
# MD5s of the *uncompressed* official files (the .gz wrappers may differ): they guard the shipped copy.
MD5S = {
    "train_images": "6bbc9ace898e44ae57da46a324031adb",
    "train_labels": "a25bea736e30d166cdddb491f175f624",
    "test_images": "2646ac647ad5339dbf082846283269ea",
    "test_labels": "27ae3e4e09519cfbb04c329615203637",
}


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels 0-255 -> floats in [0, 1], what the models take."""
    return images.float().div_(255)


def load_shipped() -> dict[str, torch.Tensor]:
    """The shipped MNIST's four tensors (train_x, train_y, test_x, test_y), each file checked against its MD5."""
    return load_idx_folder(SHIPPED_DIR, md5s=MD5S)
