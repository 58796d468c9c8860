"""The LightningDataModule of the shipped data: IDX files (MNIST, Fashion-MNIST, KMNIST, ...), Kaggle CSVs or a
folder of images per class, kept as one uint8 tensor and served in index batches.

An image's path: files -> uint8 tensor (N, C, side, side) -> ``IndexBatchSampler`` picks a whole batch of
indices -> ``TensorBatches`` returns ``images[idx]`` -> moved to the device -> ``on_after_batch_transfer``
makes floats in [0, 1] (and augments when training) -> the LightningModule normalises and runs the network.
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
from mnist_lab.data.contract import READINGS, take_normalize
from mnist_lab.data.folder import as_channels, load_image_folder
from mnist_lab.data.kaggle_csv import read_image_csv
from mnist_lab.data.mnist import DIGITS, MEAN, SIDE, STD, TRAIN_COUNT, load_shipped, load_torchvision, to_unit
from mnist_lab.errors import ConfigError, DataError
from mnist_lab.validation import Seed

Share = Annotated[float, Field(gt=0, lt=1)]
Data = dict[str, Optional[torch.Tensor]]  # train_x, train_y, test_x, test_y
# torchvision's IDX dataset classes, which read data_dir's files (and fetch missing ones): mnist.load_torchvision
IdxClass = Literal["MNIST", "FashionMNIST", "KMNIST", "EMNIST"]


class ImageDataModule(L.LightningDataModule):
    """A dataset of small images kept as one uint8 tensor and served in index batches. ``classes``,
    ``image_size``, ``channels``, ``mean``, ``std`` and ``reading`` are what ``data.contract`` reads of it."""

    def __init__(
        self,
        data_dir: Optional[str] = None,  # null: the MNIST shipped in the package
        format: Literal["idx", "image_folder"] = "idx",  # of data_dir: four IDX files, or train/<class>/*.png
        classes: Optional[list[str]] = None,  # the class names, by label; null: the digits, or the folders' names
        image_size: PositiveInt = SIDE,  # an image folder's pictures are resized to it
        channels: Literal[1, 3] = 1,  # gray or colour (pictures converted, gray ones repeated)
        mean: Optional[float] = None,  # null: MNIST's for the shipped copy, else the training images'
        std: Optional[PositiveFloat] = None,
        download: Optional[IdxClass] = None,
        reading: Literal[READINGS] = "digits",  # type: ignore[valid-type]
        train_csv: Optional[str] = None,
        test_csv: Optional[str] = None,
        val_size: NonNegativeInt | Share = 5000,  # images (or a share of them) held out to validate; 0: none
        test_size: Share = 0.2,  # the share held out to test where the data has no test set (an image folder)
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
        self.shipped = not (data_dir or train_csv or test_csv)
        _check_split(self.shipped, format, download, val_size, folds, fold)
        classes = [str(name) for name in classes] if classes else None  # plain: checkpoints keep these settings
        self.save_hyperparameters(ignore=("seed", "augment"))
        self.classes = classes or (None if format == "image_folder" else DIGITS)
        self.image_size, self.channels, self.reading = image_size, channels, reading
        self.mean, self.std = (MEAN, STD) if self.shipped and mean is None and std is None else (mean, std)
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        # seed=null: unseeded, so each run shuffles differently (from torch's unseeded generator).
        self.seed = int(torch.randint(2**31, ())) if seed is None else seed
        self.augment = dict(augment) if augment else None
        self.train_set = self.val_set = self.test_set = None

    def split(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(validation, training) indices of ``count`` training images: fold ``fold`` of ``folds``, or val_size.

        Drawn with split_seed alone: the same folds for every run, whatever its training seed or rank.
        """
        order = torch.randperm(count, generator=torch.Generator().manual_seed(self.hparams.split_seed))
        if self.hparams.folds is not None:
            parts = list(torch.tensor_split(order, self.hparams.folds))
            return parts.pop(self.hparams.fold).sort().values, torch.cat(parts).sort().values
        held = _count(self.hparams.val_size, count, "val_size")
        return order[:held].sort().values, order[held:].sort().values

    def load(self) -> Data:
        hp = self.hparams
        if self.shipped:
            data = load_shipped()
        elif hp.train_csv or hp.test_csv:
            data = self._read_csvs()
        elif hp.format == "image_folder":
            data, self.classes = load_image_folder(Path(hp.data_dir), self.image_size, self.channels, self.classes)
        else:
            data = load_torchvision(Path(hp.data_dir), hp.download)
        if data["test_x"] is None and data["train_x"] is not None and hp.format == "image_folder":
            data = self._hold_out_test(data)
        for key in ("train_x", "test_x"):  # IDX and CSV images are (N, H, W): one channel
            if data[key] is not None:
                data[key] = as_channels(data[key] if data[key].dim() == 4 else data[key].unsqueeze(1), self.channels)
        self._check_fits(data)
        return data

    def _read_csvs(self) -> Data:
        hp, data = self.hparams, {}
        for part, path in (("train", hp.train_csv), ("test", hp.test_csv)):
            data[f"{part}_x"], data[f"{part}_y"] = (
                read_image_csv(Path(path), len(self.classes)) if path else (None,) * 2
            )
        if hp.train_csv and data["train_y"] is None:
            raise DataError(f"{hp.train_csv}: a training CSV needs a 'label' column first.")
        return data

    def _hold_out_test(self, data: Data) -> Data:
        """A test set of ``test_size`` of the training images, for data that has none (no test/ folder)."""
        x, y = data["train_x"], data["train_y"]
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(self.hparams.split_seed + 1))
        held = _count(self.hparams.test_size, len(y), "test_size")
        test, train = order[:held], order[held:]
        return {"train_x": x[train], "train_y": y[train], "test_x": x[test], "test_y": y[test]}

    def _check_fits(self, data: Data) -> None:
        """The images are image_size square and every label names one of the classes."""
        where = self.hparams.train_csv or self.hparams.test_csv or self.hparams.data_dir or "the shipped MNIST"
        for part in ("train", "test"):
            images, labels = data[f"{part}_x"], data[f"{part}_y"]
            if images is not None and tuple(images.shape[2:]) != (self.image_size, self.image_size):
                raise DataError(
                    f"{where}: the {part} images are {'x'.join(map(str, images.shape[2:]))} pixels, not "
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
                raise DataError(
                    f"{self.hparams.train_csv or self.hparams.data_dir}: every training pixel is {self.mean:g} "
                    "(std 0): there is nothing to learn from; check the files, or set data.std if they are meant "
                    "to be this way."
                )

    def setup(self, stage: Optional[str] = None) -> None:
        if self.train_set is None and self.test_set is None:
            self._read()
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        # auto: on a GPU, since the whole uint8 MNIST is 55 MB; elsewhere it is where it would be copied to.
        if self.hparams.resident_on_device is True or (
            self.hparams.resident_on_device == "auto" and device.type == "cuda"
        ):
            for name in ("train_set", "val_set", "test_set"):
                if getattr(self, name) is not None:
                    setattr(self, name, getattr(self, name).to(device))

    def _read(self) -> None:
        data = self.load()
        if data["test_x"] is not None and data["test_y"] is not None:
            self.test_set = TensorBatches(data["test_x"], data["test_y"])
        x, y = data["train_x"], data["train_y"]
        if x is None:
            return
        val_idx, train_idx = self.split(len(y))
        self._statistics(x[train_idx])
        self.train_set = TensorBatches(x[train_idx], y[train_idx])
        self.val_set = TensorBatches(x[val_idx], y[val_idx]) if len(val_idx) else None

    def _loader(self, dataset: Optional[TensorBatches], batch_size: int, shuffle: bool) -> list | DataLoader:
        if dataset is None:
            return []  # Lightning's "no loader": nothing to validate or test
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        sampler = IndexBatchSampler(len(dataset), batch_size, shuffle, self.seed, rank, world, dataset.images.device)
        # batch_size=None: the sampler's index tensor goes straight to __getitem__, no collate.
        # No pin_memory: page-locking every batch cost 5.7 ms on an H100; resident data needs no copy.
        return DataLoader(dataset, sampler=sampler, batch_size=None)

    def train_dataloader(self) -> list | DataLoader:
        if self.train_set is None:
            raise DataError("There is no training data: give data.train_csv, or use an IDX dataset (data=mnist).")
        return self._loader(self.train_set, self.batch_size, shuffle=True)

    def val_dataloader(self) -> list | DataLoader:
        return self._loader(self.val_set, self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> list | DataLoader:
        return self._loader(self.test_set, self.eval_batch_size, shuffle=False)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """uint8 (B, C, H, W) -> floats in [0, 1], augmented when training; labels pass through."""
        images, labels = batch if isinstance(batch, (tuple, list)) else (batch, None)
        if images.dtype != torch.uint8:  # already floats (an example input, a user's images)
            return batch
        x = to_unit(images)
        if self.augment and self.trainer is not None and self.trainer.training:
            x = random_distortion(x, self.augment)
        return x if labels is None else (x, labels)


def _check_split(shipped: bool, format: str, download: Optional[str], val_size: int | float, *folding: Any) -> None:
    """The settings' rules across each other, before any file is read."""
    if shipped and (download not in (None, "MNIST") or format != "idx"):
        what = f"data.download={download}" if format == "idx" else f"data.format={format}"
        raise ConfigError(
            f"data.data_dir=null is not allowed with {what}: the shipped copy is MNIST; give the folder of the "
            "data (data.data_dir=...)."
        )
    if folding[0] is not None:
        _check_fold(*folding)
    elif shipped:
        _count(val_size, TRAIN_COUNT, "val_size")


def _check_fold(folds: int, fold: Optional[int]) -> None:
    if fold is None:
        raise ConfigError(
            f"data.fold=null is not allowed with data.folds={folds}: give data.fold=0..{folds - 1}, "
            f"or train every fold: python train.py -m data.folds={folds} data.fold='range({folds})'"
        )
    if fold >= folds:
        raise ConfigError(f"data.fold={fold} is not allowed: the folds are numbered 0..{folds - 1}")


def _count(size: int | float, count: int, key: str) -> int:
    """``size`` images (or that share of ``count``), refused when it leaves none to train on."""
    held = round(size * count) if isinstance(size, float) else size
    if held >= count:
        raise ConfigError(
            f"data.{key}={size} is not allowed: it must be smaller than the {count} training images (or a share)."
        )
    return held


def data_of_run(run_config: Optional[dict], data_dir: Optional[str] = None) -> L.LightningDataModule:
    """The data a run trained on (its config's ``data``; the shipped MNIST for a checkpoint without one), set up to
    test; ``data_dir`` replaces its folder."""
    from mnist_lab.building import build

    conf = dict((run_config or {}).get("data") or {"_target_": f"{__name__}.ImageDataModule"})
    if data_dir:
        conf["data_dir"] = data_dir
    conf.pop("resident_on_device", None)  # read on the CPU: there is no trainer
    datamodule = build(conf, where="data")
    datamodule.prepare_data()
    datamodule.setup("test")
    take_normalize(datamodule)  # as when it trained: the model normalises
    return datamodule
