"""MNIST itself: the copy shipped in the package and its checksums, its image size, classes and statistics; and the
IDX datasets of its followers, read by torchvision's own classes."""

from __future__ import annotations

import functools
import gzip
import hashlib
from pathlib import Path
from typing import Optional

import torch
import torchvision.datasets

from mnist_lab.errors import DataError

# The four official files, shipped inside the package: found wherever it is installed.
SHIPPED_DIR = Path(__file__).parent / "mnist_files"
SIDE = 28  # pixels: every image is SIDE x SIDE
DIGITS = [str(d) for d in range(10)]  # the class names; a checkpoint without its own classes has these
CLASSES = len(DIGITS)
# Training-set pixel statistics (of values in [0, 1]); the models normalise with them.
MEAN, STD = 0.1307, 0.3081
TRAIN_COUNT = 60_000
# MD5s of the *uncompressed* official files: the shipped .gz wrappers are not torchvision's, whose MD5s differ.
MD5S = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels 0-255 -> floats in [0, 1], what the models take."""
    return images.float().div_(255)


def _shipped(name: str) -> torch.Tensor:
    """One shipped file's images (N, 28, 28) or labels (N,)."""
    return _read_checked(SHIPPED_DIR / f"{name}.gz", MD5S[name])


@functools.cache
def _read_checked(path: Path, md5: str) -> torch.Tensor:
    """A gzipped IDX file decompressed in memory and checked against ``md5``; read once a process (0.5 s for
    MNIST, once for every run of a sweep in one process). Callers copy before they change it (indexing does)."""
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as err:
        raise DataError(f"{path}: cannot read or decompress ({err}); reinstall the package.") from None
    if hashlib.md5(raw).hexdigest() != md5:
        raise DataError(f"{path}: its MD5 differs from the official file's; the file is corrupted. Reinstall.")
    if "images" in path.name:
        return torch.frombuffer(bytearray(raw), dtype=torch.uint8, offset=16).view(-1, SIDE, SIDE)
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8, offset=8).long()


def load_shipped() -> dict[str, torch.Tensor]:
    """The shipped MNIST's four tensors (train_x, train_y, test_x, test_y), each file checked against its MD5."""
    return {
        "train_x": _shipped("train-images-idx3-ubyte"),
        "train_y": _shipped("train-labels-idx1-ubyte"),
        "test_x": _shipped("t10k-images-idx3-ubyte"),
        "test_y": _shipped("t10k-labels-idx1-ubyte"),
    }


def load_torchvision(root: Path, name: Optional[str]) -> dict[str, torch.Tensor]:
    """The four tensors of torchvision's IDX dataset class ``name`` (MNIST, FashionMNIST, KMNIST, EMNIST's digits)
    in its own layout, ``root/<name>/raw/``, with its own checks, and fetched by it when missing; ``name`` None:
    a user's own files in MNIST's place, never fetched."""
    kind = getattr(torchvision.datasets, name or "MNIST")
    extra = {"split": "digits"} if kind is torchvision.datasets.EMNIST else {}
    try:
        train, test = (kind(str(root), train=train, download=name is not None, **extra) for train in (True, False))
    except Exception as err:  # noqa: BLE001 - torchvision raises its own mix for missing, damaged and unreachable
        where = root / kind.__name__ / "raw"
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(
            f"{where}: torchvision's {kind.__name__} cannot read its IDX files ({reason}); put the four files there, "
            "uncompressed" + (", or let it download them (a network)." if name else ".")
        ) from None
    # EMNIST's files hold each image transposed (torchvision's docs): turned to MNIST's orientation.
    images = [part.data.transpose(1, 2) if extra else part.data for part in (train, test)]
    return {"train_x": images[0], "train_y": train.targets.long(), "test_x": images[1], "test_y": test.targets.long()}
