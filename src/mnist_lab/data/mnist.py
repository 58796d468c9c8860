"""MNIST itself: its official files and their checksums, its image size and pixel statistics, and the IDX reader."""

from __future__ import annotations

import gzip
import hashlib
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from mnist_lab.errors import DataError

# The four official files, shipped inside the package: found wherever it is installed.
SHIPPED_DIR = Path(__file__).parent / "mnist_files"
SIDE = 28  # pixels: every image is SIDE x SIDE
CLASSES = 10
# Training-set pixel statistics (of values in [0, 1]); the models normalise with them.
MEAN, STD = 0.1307, 0.3081

IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049


@dataclass(frozen=True)
class IdxFile:
    name: str
    magic: int
    count: int
    md5: str


# Item counts and MD5s of the *uncompressed* official files (the .gz wrappers may differ).
FILES = {
    "train_images": IdxFile("train-images-idx3-ubyte", IMAGE_MAGIC, 60_000, "6bbc9ace898e44ae57da46a324031adb"),
    "train_labels": IdxFile("train-labels-idx1-ubyte", LABEL_MAGIC, 60_000, "a25bea736e30d166cdddb491f175f624"),
    "test_images": IdxFile("t10k-images-idx3-ubyte", IMAGE_MAGIC, 10_000, "2646ac647ad5339dbf082846283269ea"),
    "test_labels": IdxFile("t10k-labels-idx1-ubyte", LABEL_MAGIC, 10_000, "27ae3e4e09519cfbb04c329615203637"),
}
TRAIN_COUNT = FILES["train_images"].count


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels 0-255 -> floats in [0, 1], what the models take."""
    return images.float().div_(255)


def find_idx(data_dir: Path, name: str) -> Optional[Path]:
    """The file ``name`` in ``data_dir``, raw or gzipped, also in torchvision's ``MNIST/raw`` layout."""
    for folder in (data_dir, data_dir / "MNIST" / "raw"):
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


def _header(path: Path, raw: bytes, expected: Optional[IdxFile]) -> tuple[int, tuple[int, ...]]:
    """The header's length in bytes and the data's dimensions, after checking both against the file."""
    if len(raw) < 8:
        raise DataError(f"{path}: only {len(raw)} bytes, too short for an IDX header. The file is truncated.")
    magic = struct.unpack(">i", raw[:4])[0]
    if magic not in (IMAGE_MAGIC, LABEL_MAGIC) or (expected and magic != expected.magic):
        want = expected.magic if expected else f"{IMAGE_MAGIC} or {LABEL_MAGIC}"
        raise DataError(f"{path}: wrong magic number {magic} (expected {want}); this is not the right MNIST IDX file.")
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


def read_idx(path: Path, expected: Optional[IdxFile] = None) -> torch.Tensor:
    """Read an IDX file (optionally gzipped) of uint8 data, checking header, size and, if ``expected``, checksum."""
    path = Path(path)
    raw = _read_bytes(path)
    length, dims = _header(path, raw, expected)
    if expected:
        if dims[0] != expected.count:
            raise DataError(f"{path}: holds {dims[0]} items, the official file holds {expected.count}.")
        md5 = hashlib.md5(raw).hexdigest()
        if md5 != expected.md5:
            raise DataError(
                f"{path}: MD5 {md5} of the uncompressed data differs from the official {expected.md5}; "
                "the file is corrupted."
            )
    # bytearray: torch.frombuffer wants a writable buffer.
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8, offset=length).view(*dims)


def _download(data_dir: Path, missing: list[str]) -> None:
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


def load_mnist(data_dir: Path, download: bool = True) -> dict[str, torch.Tensor]:
    """The four MNIST tensors; uses torchvision's downloader when ``data_dir`` lacks the files."""
    data_dir = Path(data_dir)
    paths = {key: find_idx(data_dir, spec.name) for key, spec in FILES.items()}
    missing = [FILES[key].name for key, path in paths.items() if path is None]
    if missing and download:
        _download(data_dir, missing)
        return load_mnist(data_dir, download=False)
    if missing:
        raise DataError(f"MNIST files {missing} are not in {data_dir}. Put the four IDX files there.")
    tensors = {key: read_idx(path, FILES[key]) for key, path in paths.items()}
    return {
        "train_x": tensors["train_images"],
        "train_y": tensors["train_labels"].long(),
        "test_x": tensors["test_images"],
        "test_y": tensors["test_labels"].long(),
    }
