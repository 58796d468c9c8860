"""A folder of images per class, torchvision's ImageFolder layout: ``<root>/train/<class>/*.png`` and, optionally,
``<root>/test/<class>/...``; any size and mode, made ``image_size`` square and gray or colour."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Optional

import torch
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder
from torchvision.transforms import v2

from mnist_lab.errors import DataError


def fit_image(image: torch.Tensor, side: int, channels: int) -> torch.Tensor:
    """A uint8 picture (C, H, W), squeezed to (channels, side, side): how a folder's images and, at
    ``reading=resized``, a user's picture are made the network's input."""
    return as_channels(v2.functional.resize(image, [side, side], antialias=True), channels)


def as_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """uint8 images (..., C, H, W) made gray (ITU-R 601-2 luma, as PIL's "L") or colour (gray repeated)."""
    if images.shape[-3] == channels:
        return images
    if channels == 3:
        return images.expand(*images.shape[:-3], 3, *images.shape[-2:]).contiguous()
    return v2.functional.rgb_to_grayscale(images)


def _read_part(folder: Path, side: int, channels: int, classes: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    transform = v2.Compose([v2.PILToTensor(), partial(fit_image, side=side, channels=channels)])
    try:
        dataset = ImageFolder(str(folder), transform=transform)
    except (FileNotFoundError, OSError) as err:
        raise DataError(f"{folder}: {err}") from None
    if dataset.classes != classes:
        raise DataError(f"{folder}: its class folders {dataset.classes} are not train/'s {classes}.")
    # Decoded once, in 4 worker processes where the machine has the cores; then kept as one uint8 tensor.
    loader = DataLoader(dataset, batch_size=256, num_workers=min(4, torch.get_num_threads() // 2))
    images, labels = zip(*loader)
    return torch.cat(images), torch.cat(labels)


def load_image_folder(
    root: Path, side: int, channels: int, classes: Optional[list[str]] = None
) -> tuple[dict[str, Optional[torch.Tensor]], list[str]]:
    """The images under ``root/train`` and ``root/test`` (None where there is no test/), and the class names: the
    folders' names, or ``classes`` when given (the same count, by the folders' sorted order)."""
    train = root / "train"
    if not train.is_dir():
        raise DataError(f"{root}: no train/ folder; an image folder holds train/<class>/<images> (and test/).")
    found = sorted(entry.name for entry in train.iterdir() if entry.is_dir())
    if classes and len(classes) != len(found):
        raise DataError(f"{train}: {len(found)} class folders {found}, but data.classes names {len(classes)}.")
    data = dict(zip(("train_x", "train_y"), _read_part(train, side, channels, found)))
    test = root / "test"
    data |= dict(zip(("test_x", "test_y"), _read_part(test, side, channels, found) if test.is_dir() else (None,) * 2))
    return data, classes or found
