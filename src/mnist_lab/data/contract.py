"""Lightning's data contract, and the little the project reads on top of it.

Any LightningDataModule trains here whose dataloaders yield ``(images, labels)``: images (B, C, H, W) or
(B, H, W), floats in [0, 1] or uint8, labels integers. On top of that the project needs only the class count,
as ``num_classes`` or ``classes``. What else a model must know to read a new picture (image size, channels,
pixel statistics, class names, how a picture is read) is taken from the DataModule where it has it and
inferred from a training batch where it has not; either way it goes into the model, and so into its
checkpoint. A validation or test dataloader is optional: without one the run does not validate or test. A
``transforms.Normalize`` among the DataModule's transforms becomes the model's (``take_normalize``).
"""

from __future__ import annotations

from typing import Any, Iterator, Optional

import lightning as L
import torch
from lightning.pytorch.utilities.model_helpers import is_overridden
from torchvision import transforms
from torchvision.transforms import v2

from mnist_lab.data.mnist import to_unit
from mnist_lab.errors import DataError
from mnist_lab.logs import get_logger

log = get_logger(__name__)

READINGS = ("digits", "picture", "resized")  # how predict.py and serve.py read a picture (inference.reading)
NORMALIZE = (transforms.Normalize, v2.Normalize)
CONTAINING = ("transforms", "transform", "dataset")  # where a Normalize sits: a Compose, a dataset, a Subset
OVERSHOOT = 0.1  # how far past [0, 1] a picture's pixels may reach (a bicubic resize's ringing), not normalised ones


def loader(datamodule: L.LightningDataModule, stage: str) -> Optional[Any]:
    """The ``stage`` dataloader, or None where the data has none (not defined, or empty)."""
    if not is_overridden(f"{stage}_dataloader", datamodule, L.LightningDataModule):
        return None
    found = getattr(datamodule, f"{stage}_dataloader")()
    if isinstance(found, (list, tuple)):  # Lightning takes a list of loaders; the first is the one read here
        found = found[0] if found else None
    try:
        return found if found is not None and len(found) else None
    except TypeError:  # an iterable dataset has no length
        return found


def unit_images(images: torch.Tensor) -> torch.Tensor:
    """Images as the contract allows them, (B, C, H, W) or (B, H, W), uint8 or floats in [0, 1], as the networks
    take them: (B, C, H, W) floats in [0, 1]. The model reads every batch through it: a DataModule needs no
    transform of its own."""
    images = images.unsqueeze(1) if images.dim() == 3 else images  # (B, H, W): one channel
    return to_unit(images) if images.dtype == torch.uint8 else images.float()


def _as_pair(batch: Any, stage: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch as (images, labels), or the one line saying what it is instead."""
    if not (isinstance(batch, (tuple, list)) and len(batch) >= 2 and isinstance(batch[1], torch.Tensor)):
        got = type(batch).__name__ if not isinstance(batch, (tuple, list)) else f"{len(batch)} items"
        raise DataError(f"the {stage} dataloader yields {got}, not (images, labels): every batch needs its labels.")
    images, labels = batch[0], batch[1]
    if isinstance(images, (list, tuple)):  # a collate that could not stack them
        sizes = sorted({tuple(image.shape) for image in images})
        raise DataError(f"the {stage} images have mixed sizes {sizes}: resize them to one (transforms.Resize).")
    images = unit_images(images)
    if images.dim() != 4 or labels.dim() != 1 or labels.is_floating_point() or len(labels) != len(images):
        raise DataError(
            f"the {stage} dataloader yields images {tuple(images.shape)} and labels {tuple(labels.shape)} "
            f"{labels.dtype}: it needs images (B, C, H, W) and one integer label per image."
        )
    return images, labels


def batches(datamodule: L.LightningDataModule, stage: str) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The ``stage`` batches as the model is given them, on the CPU: the DataModule's transfer hooks applied,
    images as floats (B, C, H, W)."""
    found = loader(datamodule, stage)
    if found is None:
        return
    try:
        for batch in found:
            batch = datamodule.on_after_batch_transfer(datamodule.on_before_batch_transfer(batch, 0), 0)
            yield _as_pair(batch, stage)
    except RuntimeError as err:
        if "equal size" not in str(err):
            raise
        raise DataError(f"the {stage} images have mixed sizes ({err}): resize them to one (transforms.Resize).")


def tensors(
    datamodule: L.LightningDataModule, stage: str, limit: Optional[int] = None
) -> Optional[tuple[torch.Tensor, torch.Tensor]]:
    """The ``stage`` images and labels in one tensor each (the first ``limit`` of them); None without any."""
    parts, count = [], 0
    for images, labels in batches(datamodule, stage):
        parts.append((images, labels))
        count += len(labels)
        if limit is not None and count >= limit:
            break
    if not parts:
        return None
    images, labels = (torch.cat(part) for part in zip(*parts))
    return images[:limit], labels[:limit]


def class_names(datamodule: L.LightningDataModule) -> list[str]:
    """``classes`` (names by label), else ``num_classes`` named 0, 1, ...; one of them is the contract."""
    classes = getattr(datamodule, "classes", None)
    if classes:
        return [str(name) for name in classes]
    count = getattr(datamodule, "num_classes", None)
    if not isinstance(count, int) or count < 2:
        raise DataError(
            f"{type(datamodule).__name__} says nothing of its classes: give it a num_classes attribute (an int "
            "from 2 up) or classes (a list of names, by label)."
        )
    return [str(label) for label in range(count)]


def _normalizes(obj: Any, depth: int = 6) -> Iterator[Any]:
    """The torchvision ``Normalize`` transforms (v1 or v2) that ``obj`` reaches: a DataModule's attributes, a
    Compose's transforms, a dataset's transform, a Subset's (random_split's) dataset."""
    if isinstance(obj, NORMALIZE):
        yield obj
        return
    if not depth or obj is None:
        return
    children = list(vars(obj).values()) if isinstance(obj, L.LightningDataModule) else []
    children += list(obj) if isinstance(obj, list) else [getattr(obj, key, None) for key in CONTAINING]
    for child in children:
        yield from _normalizes(child, depth - 1)


def take_normalize(datamodule: L.LightningDataModule) -> dict[str, float | list[float]]:
    """A ``transforms.Normalize`` among the DataModule's transforms, taken into the model: set to leave pixels as
    they are (the data then yields pictures in [0, 1]), its mean and std returned for the model to normalise with,
    new pictures too (one number, or one a channel). Called again wherever the data is set up anew (each stage may
    make its transforms again)."""
    found = [n for n in _normalizes(datamodule) if any(m != 0 for m in n.mean) or any(s != 1 for s in n.std)]
    if not found:
        return {}
    stats = {(tuple(map(float, n.mean)), tuple(map(float, n.std))) for n in found}
    if len(stats) > 1:
        raise DataError(
            f"{type(datamodule).__name__} normalises its images in {len(stats)} ways (transforms.Normalize "
            f"{sorted(stats)}): give its sets one, the model normalises every picture with it."
        )
    for normalize in found:
        normalize.mean, normalize.std = [0.0] * len(normalize.mean), [1.0] * len(normalize.std)
    [(mean, std)] = stats
    return {"mean": _one_or_each(mean), "std": _one_or_each(std)}


def _one_or_each(values: tuple[float, ...]) -> float | list[float]:
    return values[0] if len(set(values)) == 1 else list(values)


def data_facts(datamodule: L.LightningDataModule) -> dict[str, Any]:
    """What a model of this data needs beyond Lightning's contract: classes, image_size, channels, mean, std and
    reading. Sets the data up and reads one training batch, refused in one line if it breaks the contract."""
    datamodule.prepare_data()
    datamodule.setup("fit")
    classes, normalized = class_names(datamodule), take_normalize(datamodule)
    if normalized:
        given = ", ".join(f"{key}={value}" for key, value in normalized.items())
        log.info(f"{type(datamodule).__name__}'s transforms.Normalize({given}) is the model's now")
    first = next(batches(datamodule, "train"), None)
    if first is None:
        raise DataError(f"{type(datamodule).__name__} has no training batches: its train_dataloader is empty.")
    images, labels = first
    if labels.min() < 0 or labels.max() >= len(classes):
        raise DataError(
            f"the train labels go from {int(labels.min())} to {int(labels.max())}, but the data has {len(classes)} "
            f"classes: labels must be 0..{len(classes) - 1}."
        )
    low, high = float(images.min()), float(images.max())
    if low < -OVERSHOOT or high > 1 + OVERSHOOT:  # normalised, or 0-255 as floats: read wrong in every new picture
        raise DataError(
            f"the train images hold values from {low:.2f} to {high:.2f}, not 0 to 1: give floats in [0, 1] "
            "(transforms.ToTensor) or uint8, normalised by a transforms.Normalize among its transforms or not at all."
        )
    if images.shape[-1] != images.shape[-2]:
        raise DataError(f"the train images are {images.shape[-2]}x{images.shape[-1]}: the networks take square ones.")
    declared = {key: getattr(datamodule, key, None) for key in ("mean", "std", "reading")} | normalized
    std = declared["std"] if declared["std"] is not None else round(float(images.std()), 4)
    if std == 0:  # normalising would divide by zero: every loss NaN
        raise DataError("every pixel of the first training batch is the same (std 0): there is nothing to learn from.")
    return {
        "classes": classes,
        "image_size": images.shape[-1],
        "channels": images.shape[1],
        "mean": declared["mean"] if declared["mean"] is not None else round(float(images.mean()), 4),
        "std": std,
        "reading": declared["reading"] if declared["reading"] in READINGS else "resized",
    }
