"""The LightningDataModule: an IDX dataset (MNIST, Fashion-MNIST, KMNIST, ...) or Kaggle CSVs kept as uint8
tensors and served in index batches.

An image's path: IDX file -> ``idx.read_idx`` (uint8 tensor) -> ``IndexBatchSampler`` picks a
whole batch of indices -> ``TensorBatches`` returns ``images[idx]`` -> moved to the device ->
``on_after_batch_transfer`` makes floats in [0, 1] (and augments when training) -> the
LightningModule normalises and runs the network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

import lightning as L
import torch
from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt
from torch.utils.data import DataLoader
from typing_extensions import Annotated

from mnist_lab.data.augment import Augment, random_distortion
from mnist_lab.data.batching import IndexBatchSampler, TensorBatches
from mnist_lab.data.idx import load_idx_folder
from mnist_lab.data.kaggle_csv import read_image_csv
from mnist_lab.data.mnist import DIGITS, MEAN, SHIPPED_DIR, SIDE, STD, TRAIN_COUNT, load_shipped, to_unit
from mnist_lab.errors import ConfigError, DataError
from mnist_lab.validation import Seed

# How predict.py and serve.py turn a user's picture into the network's input (inference/reading.py).
READINGS = ("digits", "picture")


class ImageDataModule(L.LightningDataModule):
    """A dataset of small gray images (IDX files or a Kaggle-style CSV) kept as one uint8 tensor and served in
    index batches. What a model trained on it must know travels into its checkpoint: ``classes``, ``image_size``,
    ``mean`` and ``std`` (``training.run.prepare``, ``ImageClassifier.setup``)."""

    def __init__(
        self,
        data_dir: Optional[str] = None,
        classes: Optional[list[str]] = None,  # the class names, by label; null: the digits 0-9
        image_size: PositiveInt = SIDE,
        mean: Optional[float] = None,  # null: MNIST's for the shipped copy, else the training images'
        std: Optional[PositiveFloat] = None,
        download: Optional[str] = None,  # torchvision's dataset class that fetches missing IDX files
        reading: Literal[READINGS] = "digits",  # type: ignore[valid-type]
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
        if not (data_dir or train_csv or test_csv) and download not in (None, "MNIST"):
            raise ConfigError(
                f"data.data_dir=null is not allowed with data.download={download}: the shipped copy is MNIST; "
                f"give the folder of {download}'s IDX files (data.data_dir=...), fetched there when missing."
            )
        if folds is not None:
            self._check_fold(folds, fold)
        elif not (train_csv or data_dir):
            self._check_val_size(val_size, TRAIN_COUNT)
        self.folds, self.fold = folds, fold
        self.data_dir = Path(data_dir) if data_dir else SHIPPED_DIR
        self.classes = list(classes) if classes else DIGITS
        self.image_size, self.download, self.reading = image_size, download, reading
        self.mean, self.std = (
            (MEAN, STD) if mean is None and std is None and not (data_dir or train_csv) else (mean, std)
        )
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
            data = load_shipped() if self.data_dir == SHIPPED_DIR else load_idx_folder(self.data_dir, self.download)
        else:
            train_x, train_y = (
                read_image_csv(Path(self.train_csv), len(self.classes)) if self.train_csv else (None, None)
            )
            if self.train_csv and train_y is None:
                raise DataError(f"{self.train_csv}: a training CSV needs a 'label' column first.")
            test_x, test_y = read_image_csv(Path(self.test_csv), len(self.classes)) if self.test_csv else (None, None)
            data = {"train_x": train_x, "train_y": train_y, "test_x": test_x, "test_y": test_y}
        self._check_fits(data)
        return data

    def _check_fits(self, data: dict[str, Optional[torch.Tensor]]) -> None:
        """The images are image_size square and every label names one of the classes."""
        where = self.train_csv or self.test_csv or self.data_dir
        for part in ("train", "test"):
            images, labels = data[f"{part}_x"], data[f"{part}_y"]
            if images is not None and tuple(images.shape[1:]) != (self.image_size, self.image_size):
                raise DataError(
                    f"{where}: the {part} images are {'x'.join(map(str, images.shape[1:]))} pixels, not "
                    f"{self.image_size}x{self.image_size}; set data.image_size to their size."
                )
            if labels is not None and len(labels) and int(labels.max()) >= len(self.classes):
                raise DataError(
                    f"{where}: the {part} labels go up to {int(labels.max())}, but data.classes names "
                    f"{len(self.classes)} classes; list one name per label in data.classes."
                )

    def _statistics(self, images: torch.Tensor) -> None:
        """The training images' pixel mean and std, where the config gives none (a second for 60k images)."""
        if self.mean is None or self.std is None:
            pixels = to_unit(images.flatten())
            self.mean = round(float(pixels.mean()), 4) if self.mean is None else self.mean
            self.std = round(float(pixels.std()), 4) if self.std is None else self.std
            if self.std == 0:  # normalising would divide by zero: every loss NaN, the run stopped at step 0
                where = self.train_csv or self.data_dir
                raise DataError(
                    f"{where}: every training pixel is {self.mean:g} (std 0): there is nothing to learn from; "
                    "check the files, or set data.std if the images are meant to be this way."
                )

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
        self._statistics(x[train_idx])
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
            raise DataError("There is no training data: give data.train_csv, or use an IDX dataset (data=mnist).")
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


def data_of_run(run_config: Optional[dict], data_dir: Optional[str] = None) -> ImageDataModule:
    """The data a run trained on (its config's ``data``; the shipped MNIST for a checkpoint without one), read
    and ready to test; ``data_dir`` replaces its folder."""
    from mnist_lab.building import build

    conf = dict((run_config or {}).get("data") or {"_target_": f"{__name__}.ImageDataModule"})
    if data_dir:
        conf["data_dir"] = data_dir
    conf.pop("resident_on_device", None)  # read on the CPU: there is no trainer
    datamodule = build(conf, where="data")
    datamodule.setup("test")
    return datamodule
