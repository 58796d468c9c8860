"""IDX files, the format of MNIST, Fashion-MNIST and KMNIST: the reader, and a folder's four files as tensors."""

from __future__ import annotations

import gzip
import hashlib
import math
import struct
from pathlib import Path
from typing import Optional

import torch

from mnist_lab.errors import DataError

IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049
# The four files of an IDX dataset, by the names MNIST gave them and its followers kept.
NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def find_idx(data_dir: Path, name: str, layout: Optional[str] = None) -> Optional[Path]:
    """The file ``name`` in ``data_dir``, raw or gzipped, also in torchvision's ``<layout>/raw`` folder."""
    folders = [data_dir] + ([data_dir / layout / "raw"] if layout else [])
    for folder in folders:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def _read_bytes(path: Path) -> bytes:
    try:
        # gzip.open, unlike gzip.decompress, refuses a stream cut short.
        with gzip.open(path) if path.suffix == ".gz" else path.open("rb") as f:
            return f.read()
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise DataError(f"{path}: cannot read or decompress ({err}). Replace it with a good copy.") from err


def _header(path: Path, raw: bytes, magic_expected: int) -> tuple[int, tuple[int, ...]]:
    """The header's length in bytes and the data's dimensions, after checking both against the file."""
    if len(raw) < 8:
        raise DataError(f"{path}: only {len(raw)} bytes, too short for an IDX header. The file is truncated.")
    magic = struct.unpack(">i", raw[:4])[0]
    if magic != magic_expected:
        what = "images" if magic_expected == IMAGE_MAGIC else "labels"
        raise DataError(
            f"{path}: wrong magic number {magic} (expected {magic_expected}); this is not an IDX file of {what}."
        )
    ndim = magic & 0xFF
    length = 4 * (1 + ndim)
    if len(raw) < length:
        raise DataError(f"{path}: header is truncated.")
    dims = struct.unpack(f">{ndim}i", raw[4:length])
    if len(raw) != length + math.prod(dims):
        raise DataError(
            f"{path}: {len(raw)} bytes but its header ({dims[0]} items of shape {dims[1:]}) needs "
            f"{length + math.prod(dims)}; the file is truncated or corrupted. Replace it with a good copy."
        )
    return length, dims


def read_idx(path: Path, magic: int, md5: Optional[str] = None) -> torch.Tensor:
    """An IDX file (optionally gzipped) of uint8 data, its header and size checked, and its MD5 if given."""
    path = Path(path)
    raw = _read_bytes(path)
    length, dims = _header(path, raw, magic)
    if md5:
        found = hashlib.md5(raw).hexdigest()
        if found != md5:
            raise DataError(
                f"{path}: MD5 {found} of the uncompressed data differs from the official {md5}; the file is corrupted."
            )
    # bytearray: torch.frombuffer wants a writable buffer.
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8, offset=length).view(*dims)


def _download(data_dir: Path, dataset: str, missing: list[str]) -> None:
    import torchvision.datasets

    try:
        for train in (True, False):
            getattr(torchvision.datasets, dataset)(str(data_dir), train=train, download=True)
    except Exception as err:  # noqa: BLE001 - any network/IO failure means the same thing here
        raise DataError(
            f"{dataset} files {missing} are not in {data_dir} and downloading them failed ({err}). "
            f"Put the four IDX files (.gz or uncompressed) into {data_dir}."
        ) from err


def load_idx_folder(
    data_dir: Path, download: Optional[str] = None, md5s: Optional[dict[str, str]] = None
) -> dict[str, torch.Tensor]:
    """The four tensors of the IDX dataset in ``data_dir``: train_x, train_y, test_x, test_y.

    Missing files are fetched by torchvision's dataset class ``download`` (MNIST, FashionMNIST, KMNIST)
    when given; ``md5s`` (by the keys of NAMES) guards a known copy.
    """
    data_dir = Path(data_dir)
    paths = {key: find_idx(data_dir, name, download) for key, name in NAMES.items()}
    missing = [NAMES[key] for key, path in paths.items() if path is None]
    if missing and download:
        _download(data_dir, download, missing)
        return load_idx_folder(data_dir, None, md5s)
    if missing:
        raise DataError(f"IDX files {missing} are not in {data_dir}. Put the four IDX files there.")
    md5s = md5s or {}
    tensors = {
        key: read_idx(path, IMAGE_MAGIC if key.endswith("images") else LABEL_MAGIC, md5s.get(key))
        for key, path in paths.items()
    }
    for part in ("train", "test"):
        images, labels = tensors[f"{part}_images"], tensors[f"{part}_labels"]
        if images.dim() != 3 or len(images) != len(labels):
            raise DataError(
                f"{paths[f'{part}_images']}: {tuple(images.shape)} images for {len(labels)} labels in "
                f"{paths[f'{part}_labels']}; a dataset needs one label per image, and images of one size."
            )
    return {
        "train_x": tensors["train_images"],
        "train_y": tensors["train_labels"].long(),
        "test_x": tensors["test_images"],
        "test_y": tensors["test_labels"].long(),
    }
