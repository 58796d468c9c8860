"""A LightningDataModule written as Lightning's documentation writes one, importing nothing of mnist_lab: three
classes of small gray pictures (a bar across, a bar down, a block) that a linear model learns in a few steps.
Its switches make it break the contract the ways a user's DataModule may."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset, random_split
from torchvision import transforms


def pictures(count: int, side: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(count) % 3
    images = torch.rand(count, 1, side, side, generator=generator) * 0.3
    middle, quarter = side // 2, side // 4
    images[labels == 0, :, middle - 2 : middle + 2, quarter:-quarter] = 1.0
    images[labels == 1, :, quarter:-quarter, middle - 2 : middle + 2] = 1.0
    images[labels == 2, :, quarter:-quarter, quarter:-quarter] = 1.0
    return images, labels


class MixedSizes(Dataset):
    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return torch.zeros(1, 12 + i % 2 * 4, 12 + i % 2 * 4), 0


class BarsData(L.LightningDataModule):
    def __init__(
        self,
        batch_size: int = 32,
        side: int = 12,
        count: int = 96,
        num_classes: int | None = 3,
        label_offset: int = 0,  # 3: labels 3..5, past the class count
        labels: bool = True,  # false: images alone
        mixed_sizes: bool = False,
        blank: bool = False,  # every pixel 0
        normalized: bool = False,  # transforms.Normalize's output: centred on 0
        raw: bool = False,  # images as a file holds them: uint8 (B, H, W), no channel
        validate: bool = True,
        test: bool = True,
    ) -> None:
        super().__init__()
        self.batch_size, self.side, self.count, self.label_offset = batch_size, side, count, label_offset
        self.has_labels, self.mixed_sizes, self.blank, self.normalized = labels, mixed_sizes, blank, normalized
        self.raw = raw
        if num_classes is not None:
            self.num_classes = num_classes
        if not validate:
            self.val_dataloader = None  # Lightning's way of having none: the method not overridden
        if not test:
            self.test_dataloader = None

    def _loader(self, seed: int, shuffle: bool = False) -> DataLoader:
        if self.mixed_sizes:
            return DataLoader(MixedSizes(), batch_size=4)
        images, labels = pictures(self.count, self.side, seed)
        images = images * 0 if self.blank else (images - 0.3) / 0.3 if self.normalized else images
        images = (images[:, 0] * 255).round().byte() if self.raw else images
        dataset = TensorDataset(images, labels + self.label_offset) if self.has_labels else TensorDataset(images)
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=shuffle)

    def train_dataloader(self) -> DataLoader:
        return self._loader(0, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(1)

    def test_dataloader(self) -> DataLoader:
        return self._loader(2)


def save_pictures(folder, count: int = 9, side: int = 28) -> list[tuple[str, int]]:
    """PNG files of bars as a user photographs them (gray, larger than the training images): (path, label)."""
    from PIL import Image

    images, labels = pictures(count, side, seed=7)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i, (image, label) in enumerate(zip(images, labels)):
        path = folder / f"bar_{i}.png"
        Image.fromarray((image[0] * 255).byte().numpy()).resize((3 * side, 3 * side)).save(path)
        files.append((str(path), int(label)))
    return files


class OwnBatches(BarsData):
    """BarsData that batches its own way: no batch_size argument."""

    def __init__(self, side: int = 12) -> None:
        super().__init__(batch_size=16, side=side)


class StagedBars(L.LightningDataModule):
    """Bars as Lightning's docs write a DataModule: each stage's data made in ``setup(stage)``, the test set only
    when testing; ``val_side``: validation images of another size than the training ones."""

    def __init__(self, val_side: int = 12) -> None:
        super().__init__()
        self.num_classes, self.val_side = 3, val_side

    def setup(self, stage: str) -> None:
        if stage == "fit":
            self.train_set = TensorDataset(*pictures(96, 12, seed=0))
            self.val_set = TensorDataset(*pictures(48, self.val_side, seed=1))
        if stage == "test":
            self.test_set = TensorDataset(*pictures(48, 12, seed=2))

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=32, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=32)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.test_set, batch_size=32)


class Transformed(Dataset):
    """Images through a torchvision transform, as a torchvision dataset applies its ``transform``."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: Any) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(self.images[i]), self.labels[i]


class NormalizedBars(StagedBars):
    """Bars as Lightning's docs' MNISTDataModule reads MNIST: through a ``transforms.Normalize`` of ``mean`` and
    ``std`` (one a channel: ``channels`` of them, the gray bars repeated), its sets made in ``setup(stage)``
    (random_split's Subsets), here with their transforms."""

    def __init__(self, mean: tuple = (0.3,), std: tuple = (0.4,)) -> None:
        super().__init__()
        self.mean_std = mean, std

    def setup(self, stage: str) -> None:
        normalize = transforms.Compose([transforms.Normalize(*self.mean_std)])  # a new one at each setup
        images, labels = pictures(144, 12, seed=0)
        full = Transformed(images.expand(-1, len(self.mean_std[0]), -1, -1), labels, normalize)
        self.train_set, self.val_set, self.test_set = random_split(full, [96, 24, 24], torch.Generator().manual_seed(0))
