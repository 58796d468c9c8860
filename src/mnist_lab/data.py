"""MNIST as uint8 tensors: IDX/CSV readers and a LightningDataModule that batches by indexing.

A digit's path: IDX file -> ``read_idx`` (uint8 tensor) -> ``IndexBatchSampler`` picks a whole
batch of indices -> ``TensorBatches`` returns ``images[idx]`` -> moved to the device ->
``on_after_batch_transfer`` makes floats in [0, 1] (and augments when training) -> the
LightningModule normalises and runs the network.
"""

from __future__ import annotations

import gzip
import hashlib
import inspect
import math
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler

SHIPPED_DIR = Path(__file__).resolve().parents[2] / "data" / "mnist"

IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049


@dataclass(frozen=True)
class IdxFile:
    name: str
    magic: int
    count: int
    md5: str


# Item counts and MD5s of the *uncompressed* official files (the .gz wrappers may differ).
MNIST_FILES = {
    "train_images": IdxFile("train-images-idx3-ubyte", IMAGE_MAGIC, 60_000, "6bbc9ace898e44ae57da46a324031adb"),
    "train_labels": IdxFile("train-labels-idx1-ubyte", LABEL_MAGIC, 60_000, "a25bea736e30d166cdddb491f175f624"),
    "test_images": IdxFile("t10k-images-idx3-ubyte", IMAGE_MAGIC, 10_000, "2646ac647ad5339dbf082846283269ea"),
    "test_labels": IdxFile("t10k-labels-idx1-ubyte", LABEL_MAGIC, 10_000, "27ae3e4e09519cfbb04c329615203637"),
}


class DataError(ValueError):
    """A data file is missing or malformed; the message names the file and what to do."""


def find_idx(data_dir: Path, name: str) -> Optional[Path]:
    """The file ``name`` in ``data_dir``, raw or gzipped, also in torchvision's ``MNIST/raw`` layout."""
    for folder in (data_dir, data_dir / "MNIST" / "raw"):
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def read_idx(path: Path, expected: Optional[IdxFile] = None) -> torch.Tensor:
    """Read an IDX file (optionally gzipped) of uint8 data, checking header, size and checksum."""
    path = Path(path)
    try:
        # gzip.open, unlike gzip.decompress, refuses a stream cut short.
        with gzip.open(path) if path.suffix == ".gz" else path.open("rb") as f:
            raw = f.read()
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise DataError(f"{path}: cannot read or decompress ({err}). Replace it with a good copy.") from err
    if len(raw) < 8:
        raise DataError(f"{path}: only {len(raw)} bytes, too short for an IDX header. The file is truncated.")
    magic, count = struct.unpack(">ii", raw[:8])
    if magic not in (IMAGE_MAGIC, LABEL_MAGIC) or (expected and magic != expected.magic):
        want = expected.magic if expected else f"{IMAGE_MAGIC} or {LABEL_MAGIC}"
        raise DataError(f"{path}: wrong magic number {magic} (expected {want}); this is not the right MNIST IDX file.")
    ndim = magic & 0xFF
    header = 4 * (1 + ndim)
    dims = struct.unpack(f">{ndim}i", raw[4:header]) if len(raw) >= header else ()
    if len(dims) != ndim:
        raise DataError(f"{path}: header is truncated.")
    expected_bytes = header + math.prod(dims)
    if len(raw) != expected_bytes:
        raise DataError(
            f"{path}: {len(raw)} bytes but its header ({count} items of shape {dims[1:]}) needs "
            f"{expected_bytes}; the file is truncated or corrupted. Replace it with a good copy."
        )
    if expected:
        if count != expected.count:
            raise DataError(f"{path}: holds {count} items, the official file holds {expected.count}.")
        md5 = hashlib.md5(raw).hexdigest()
        if md5 != expected.md5:
            raise DataError(f"{path}: MD5 {md5} of the uncompressed data differs from the official {expected.md5}; the file is corrupted.")
    # bytearray: torch.frombuffer wants a writable buffer.
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8, offset=header).view(*dims)


def load_mnist(data_dir: Path, download: bool = True) -> dict[str, torch.Tensor]:
    """The four MNIST tensors; uses torchvision's downloader when ``data_dir`` lacks the files."""
    data_dir = Path(data_dir)
    paths = {key: find_idx(data_dir, spec.name) for key, spec in MNIST_FILES.items()}
    missing = [MNIST_FILES[key].name for key, path in paths.items() if path is None]
    if missing and download:
        from torchvision.datasets import MNIST

        try:
            for train in (True, False):
                MNIST(str(data_dir), train=train, download=True)
        except Exception as err:  # noqa: BLE001 - any network/IO failure means the same thing here
            raise DataError(
                f"MNIST files {missing} are not in {data_dir} and downloading them failed ({err}). "
                f"Put the four IDX files (.gz or uncompressed) into {data_dir}, e.g. copy {SHIPPED_DIR}, "
                "or leave data.data_dir unset to use the copy shipped with this project."
            ) from err
        return load_mnist(data_dir, download=False)
    if missing:
        raise DataError(f"MNIST files {missing} are not in {data_dir}. Put the four IDX files there.")
    tensors = {key: read_idx(path, MNIST_FILES[key]) for key, path in paths.items()}
    return {
        "train_x": tensors["train_images"],
        "train_y": tensors["train_labels"].long(),
        "test_x": tensors["test_images"],
        "test_y": tensors["test_labels"].long(),
    }


def read_digit_csv(path: Path) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Read a Kaggle "Digit Recognizer" CSV: header, optional ``label``, then 784 pixels 0-255."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such CSV file.")
    with path.open() as f:
        header = f.readline().strip().split(",")
    if header == [""]:
        raise DataError(f"{path}: the file is empty; expected a header line and rows of 784 pixels.")
    has_label = header[0].strip().lower() == "label"
    if len(header) != 784 + has_label:
        raise DataError(f"{path}, line 1: header has {len(header)} columns; expected 784 pixels, optionally after 'label'.")
    try:
        with warnings.catch_warnings():  # an empty body is reported below, not as a warning
            warnings.simplefilter("ignore", UserWarning)
            values = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.int64, ndmin=2)
    except ValueError:
        _raise_first_bad_line(path, len(header))
        raise
    if values.size == 0:
        raise DataError(f"{path}: has a header but no rows.")
    bad = np.flatnonzero(((values < 0) | (values > 255))[:, int(has_label):].any(axis=1))
    if bad.size:
        raise DataError(f"{path}, line {bad[0] + 2}: pixel value outside 0-255.")
    pixels = torch.from_numpy(values[:, int(has_label):].astype(np.uint8)).view(-1, 28, 28)
    labels = torch.from_numpy(values[:, 0]) if has_label else None
    if labels is not None and ((labels < 0) | (labels > 9)).any():
        line = int(torch.nonzero((labels < 0) | (labels > 9))[0]) + 2
        raise DataError(f"{path}, line {line}: label outside 0-9.")
    return pixels, labels


def _raise_first_bad_line(path: Path, ncols: int) -> None:
    # numpy's row numbers are inconsistent between its errors, so find the line ourselves.
    with path.open() as f:
        next(f)
        for lineno, line in enumerate(f, start=2):
            cells = line.strip().split(",")
            if cells == [""]:
                continue
            if len(cells) != ncols:
                raise DataError(f"{path}, line {lineno}: {len(cells)} columns, expected {ncols}.")
            for col, cell in enumerate(cells, start=1):
                try:
                    int(cell)
                except ValueError:
                    raise DataError(f"{path}, line {lineno}, column {col}: {cell!r} is not an integer.") from None


class TensorBatches(Dataset):
    """Images and labels held as whole tensors; indexed with a batch of indices at once (on their device)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.labels[index]


class IndexBatchSampler(Sampler[torch.Tensor]):
    """Yields whole batches of indices; under DDP each rank gets its own shard.

    Like ``DistributedSampler`` it pads the shards to equal length so every rank runs the
    same number of steps, and reshuffles each epoch through ``set_epoch`` (Lightning calls it).
    The indices live on ``device``, the data's: a CPU index into GPU-resident data would be
    copied to the GPU for every batch, a host sync each time.
    """

    def __init__(self, n: int, batch_size: int, shuffle: bool, seed: int = 0, rank: int = 0, world_size: int = 1,
                 device: torch.device | str = "cpu") -> None:
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.rank, self.world_size, self.epoch, self.device = rank, world_size, 0, torch.device(device)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _shard(self) -> torch.Tensor:
        if self.shuffle:
            generator = torch.Generator(self.device).manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.n, generator=generator, device=self.device)
        else:
            order = torch.arange(self.n, device=self.device)
        if self.world_size > 1:
            per_rank = math.ceil(self.n / self.world_size)
            order = torch.cat([order, order[: per_rank * self.world_size - self.n]])
            order = order[self.rank :: self.world_size]
        return order

    def __iter__(self) -> Iterator[torch.Tensor]:
        yield from self._shard().split(self.batch_size)

    def __len__(self) -> int:
        return math.ceil(math.ceil(self.n / self.world_size) / self.batch_size)


# Control points of the elastic displacement field: ~7 px apart on a 28 px digit, the length over
# which Simard et al. (2003) smooth theirs (a Gaussian of sigma 4-6 px), at a tenth of a blur's cost.
ELASTIC_POINTS = 5


def random_distortion(
    x: torch.Tensor, degrees: float = 0, translate: float = 0, scale: float = 0, elastic: float = 0
) -> torch.Tensor:
    """A different random rotation/shift/zoom, plus an optional elastic warp of up to ``elastic``
    pixels, for every image of a (B, 1, H, W) batch; one ``grid_sample`` for all of it."""
    b, _, h, w = x.shape
    u = lambda *shape: torch.rand(b, *shape, device=x.device) * 2 - 1  # noqa: E731 - uniform in [-1, 1]
    angle = u() * math.radians(degrees)
    zoom = 1 + u() * scale
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack(
        [torch.stack([cos, -sin, u() * translate * 2], 1), torch.stack([sin, cos, u() * translate * 2], 1)], 1
    )
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    if elastic:
        # Random shifts at a coarse grid of points, smoothly interpolated: a rubber-sheet warp.
        shift = F.interpolate(u(2, ELASTIC_POINTS, ELASTIC_POINTS) * elastic, size=(h, w), mode="bicubic", align_corners=True)
        shift = shift.clamp(-elastic, elastic)  # bicubic overshoots its control points a little
        pixels_to_grid = torch.tensor([2 / w, 2 / h], device=x.device).view(1, 2, 1, 1)
        grid = grid + (shift * pixels_to_grid).permute(0, 2, 3, 1).to(x.dtype)
    return F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")


AUGMENT_KEYS = set(inspect.signature(random_distortion).parameters) - {"x"}  # what data.augment may hold


class MNISTDataModule(L.LightningDataModule):
    """MNIST (or a Kaggle-style CSV) kept as one uint8 tensor and served in index batches."""

    def __init__(
        self,
        data_dir: Optional[str] = None,
        train_csv: Optional[str] = None,
        test_csv: Optional[str] = None,
        val_size: int = 5000,
        batch_size: int = 128,
        eval_batch_size: int = 1000,
        seed: int = 0,
        split_seed: int = 0,
        augment: Optional[dict] = None,
        resident_on_device: bool | str = "auto",
    ) -> None:
        super().__init__()
        if batch_size < 1 or eval_batch_size < 1:
            raise ValueError(f"data.batch_size must be >= 1, got {batch_size} (eval_batch_size {eval_batch_size}).")
        if val_size < 0:
            raise ValueError(f"data.val_size must be >= 0, got {val_size}.")
        self.data_dir = Path(data_dir) if data_dir else SHIPPED_DIR
        self.train_csv, self.test_csv = train_csv, test_csv
        self.val_size, self.batch_size, self.eval_batch_size = val_size, batch_size, eval_batch_size
        self.seed, self.split_seed = seed, split_seed
        self.augment = dict(augment) if augment else None
        unknown = set(self.augment or ()) - AUGMENT_KEYS
        if unknown:
            raise ValueError(f"data.augment has unknown keys {sorted(unknown)}; it takes {sorted(AUGMENT_KEYS)}.")
        if resident_on_device not in (True, False, "auto"):
            raise ValueError(f"data.resident_on_device={resident_on_device!r} is not allowed: use auto, true or false.")
        self.resident_on_device = resident_on_device
        self.train_set = self.val_set = self.test_set = None

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
        if self.val_size >= len(y):
            raise ValueError(f"data.val_size={self.val_size} must be smaller than the {len(y)} training images.")
        # Its own seed: the same validation images whatever the training seed or rank.
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(self.split_seed))
        val_idx, train_idx = order[: self.val_size].sort().values, order[self.val_size :].sort().values
        self.train_set = TensorBatches(x[train_idx], y[train_idx])
        self.val_set = TensorBatches(x[val_idx], y[val_idx]) if self.val_size else None

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
            raise DataError("There is no labelled test set: give data.test_csv with a 'label' column, or use data=mnist.")
        return self._loader(self.test_set, self.eval_batch_size, shuffle=False)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """uint8 (B, 28, 28) -> float (B, 1, 28, 28) in [0, 1], augmented when training; labels pass through."""
        images, labels = batch if isinstance(batch, (tuple, list)) else (batch, None)
        if images.dtype != torch.uint8:  # already floats (an example input, a user's images)
            return batch
        x = images.unsqueeze(1).float().div_(255)
        if self.augment and self.trainer is not None and self.trainer.training:
            x = random_distortion(x, **self.augment)
        return x if labels is None else (x, labels)
