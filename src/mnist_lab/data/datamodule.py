"""The LightningDataModule: MNIST (or Kaggle CSVs) kept as uint8 tensors and served in index batches.

A digit's path: IDX file -> ``mnist.read_idx`` (uint8 tensor) -> ``IndexBatchSampler`` picks a
whole batch of indices -> ``TensorBatches`` returns ``images[idx]`` -> moved to the device ->
``on_after_batch_transfer`` makes floats in [0, 1] (and augments when training) -> the
LightningModule normalises and runs the network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

import lightning as L
import torch
from pydantic import Field, NonNegativeInt, PositiveInt
from torch.utils.data import DataLoader
from typing_extensions import Annotated

from mnist_lab.data.augment import Augment, random_distortion
from mnist_lab.data.batching import IndexBatchSampler, TensorBatches
from mnist_lab.data.kaggle_csv import read_digit_csv
from mnist_lab.data.mnist import SHIPPED_DIR, TRAIN_COUNT, load_mnist, to_unit
from mnist_lab.errors import ConfigError, DataError
from mnist_lab.validation import Seed


class MNISTDataModule(L.LightningDataModule):
    """MNIST (or a Kaggle-style CSV) kept as one uint8 tensor and served in index batches."""

    def __init__(
        self,
        data_dir: Optional[str] = None,
        train_csv: Optional[str] = None,
        test_csv: Optional[str] = None,
        val_size: NonNegativeInt = 5000,  # 0: no validation
        batch_size: PositiveInt = 128,
        eval_batch_size: PositiveInt = 1000,
        seed: Optional[Seed] = 0,
        split_seed: Seed = 0,
        augment: Optional[Augment] = None,
        resident_on_device: bool | Literal["auto"] = "auto",
        folds: Optional[Annotated[int, Field(ge=2)]] = None,  # k-fold: validate on fold `fold`, replaces val_size
        fold: Optional[NonNegativeInt] = None,
    ) -> None:
        super().__init__()
        if folds is not None:
            self._check_fold(folds, fold)
        elif not train_csv:
            self._check_val_size(val_size, TRAIN_COUNT)
        self.folds, self.fold = folds, fold
        self.data_dir = Path(data_dir) if data_dir else SHIPPED_DIR
        self.train_csv, self.test_csv = train_csv, test_csv
        self.val_size, self.batch_size, self.eval_batch_size = val_size, batch_size, eval_batch_size
        # seed=null: unseeded, so each run shuffles differently (from torch's unseeded generator).
        self.seed = int(torch.randint(2**31, ())) if seed is None else seed
        self.split_seed = split_seed
        self.augment = dict(augment) if augment else None
        self.resident_on_device = resident_on_device
        self.train_set = self.val_set = self.test_set = None

    @staticmethod
    def _check_val_size(val_size: int, train_count: int) -> None:
        if val_size >= train_count:
            raise ConfigError(
                f"data.val_size={val_size} is not allowed: it must be smaller than the {train_count} training images."
            )

    @staticmethod
    def _check_fold(folds: int, fold: Optional[int]) -> None:
        if fold is None:
            raise ConfigError(
                f"data.fold=null is not allowed with data.folds={folds}: give data.fold=0..{folds - 1}, "
                f"or train every fold: python train.py -m data.folds={folds} data.fold='range({folds})'"
            )
        if fold >= folds:
            raise ConfigError(f"data.fold={fold} is not allowed: the folds are numbered 0..{folds - 1}")

    def split(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(validation, training) indices of ``count`` training images: fold ``fold`` of ``folds``, or val_size.

        Drawn with split_seed alone: the same folds for every run, whatever its training seed or rank.
        """
        order = torch.randperm(count, generator=torch.Generator().manual_seed(self.split_seed))
        if self.folds is None:
            self._check_val_size(self.val_size, count)
            val_idx, train_idx = order[: self.val_size], order[self.val_size :]
        else:
            parts = list(torch.tensor_split(order, self.folds))
            val_idx, train_idx = parts.pop(self.fold), torch.cat(parts)
        return val_idx.sort().values, train_idx.sort().values

    def load(self) -> dict[str, Optional[torch.Tensor]]:
        if not (self.train_csv or self.test_csv):
            return load_mnist(self.data_dir)
        train_x, train_y = read_digit_csv(Path(self.train_csv)) if self.train_csv else (None, None)
        if self.train_csv and train_y is None:
            raise DataError(f"{self.train_csv}: a training CSV needs a 'label' column first.")
        test_x, test_y = read_digit_csv(Path(self.test_csv)) if self.test_csv else (None, None)
        return {"train_x": train_x, "train_y": train_y, "test_x": test_x, "test_y": test_y}

    def setup(self, stage: Optional[str] = None) -> None:
        if self.train_set is not None or self.test_set is not None:
            return
        data = self.load()
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        # auto: on a GPU, since the whole uint8 MNIST is 55 MB; elsewhere it is where it would be copied to.
        if self.resident_on_device is True or (self.resident_on_device == "auto" and device.type == "cuda"):
            data = {k: v.to(device) if v is not None else None for k, v in data.items()}
        if data["test_x"] is not None and data["test_y"] is not None:
            self.test_set = TensorBatches(data["test_x"], data["test_y"])
        x, y = data["train_x"], data["train_y"]
        if x is None:
            return
        val_idx, train_idx = self.split(len(y))
        self.train_set = TensorBatches(x[train_idx], y[train_idx])
        self.val_set = TensorBatches(x[val_idx], y[val_idx]) if len(val_idx) else None

    def _loader(self, dataset: TensorBatches, batch_size: int, shuffle: bool) -> DataLoader:
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        sampler = IndexBatchSampler(len(dataset), batch_size, shuffle, self.seed, rank, world, dataset.images.device)
        # batch_size=None: the sampler's index tensor goes straight to __getitem__, no collate.
        # No pin_memory: page-locking every batch cost 5.7 ms on an H100; resident data needs no copy.
        return DataLoader(dataset, sampler=sampler, batch_size=None)

    def train_dataloader(self) -> DataLoader:
        if self.train_set is None:
            raise DataError("There is no training data: give data.train_csv, or use data=mnist.")
        return self._loader(self.train_set, self.batch_size, shuffle=True)

    def val_dataloader(self) -> list:
        return [self._loader(self.val_set, self.eval_batch_size, shuffle=False)] if self.val_set else []

    def test_dataloader(self) -> DataLoader:
        if self.test_set is None:
            raise DataError(
                "There is no labelled test set: give data.test_csv with a 'label' column, or use data=mnist."
            )
        return self._loader(self.test_set, self.eval_batch_size, shuffle=False)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """uint8 (B, 28, 28) -> float (B, 1, 28, 28) in [0, 1], augmented when training; labels pass through."""
        images, labels = batch if isinstance(batch, (tuple, list)) else (batch, None)
        if images.dtype != torch.uint8:  # already floats (an example input, a user's images)
            return batch
        x = to_unit(images.unsqueeze(1))
        if self.augment and self.trainer is not None and self.trainer.training:
            x = random_distortion(x, self.augment)
        return x if labels is None else (x, labels)
