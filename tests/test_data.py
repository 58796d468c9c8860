from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from mnist_lab.building import build
from mnist_lab.data import mnist
from mnist_lab.data.augment import random_distortion, warp
from mnist_lab.data.batching import IndexBatchSampler
from mnist_lab.data.datamodule import ImageDataModule
from mnist_lab.data.kaggle_csv import read_image_csv
from mnist_lab.data.mnist import SHIPPED_DIR, load_shipped
from mnist_lab.errors import ConfigError, DataError
from mnist_lab.training.run import check
from support import write_idx


def test_shipped_files_are_the_official_mnist(mnist):
    assert mnist["train_x"].shape == (60_000, 28, 28) and mnist["train_x"].dtype == torch.uint8
    assert mnist["test_x"].shape == (10_000, 28, 28) and mnist["test_y"].dtype == torch.int64
    # First labels of the official t10k set, and its class balance.
    assert mnist["test_y"][:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert torch.bincount(mnist["test_y"]).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert int(mnist["train_x"].max()) == 255 and int(mnist["train_x"].min()) == 0


def test_datamodule_splits_validation_from_training_and_keeps_the_test_set():
    dm = ImageDataModule(val_size=5000, split_seed=3)
    dm.setup()
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (55_000, 5000, 10_000)
    assert dm.train_set.images.dtype == torch.uint8 and dm.train_set.labels.dtype == torch.int64
    # Disjoint and together the whole training set: compare images as bytes.
    rows = {bytes(img.numpy()) for img in dm.val_set.images[:500]}
    assert not rows & {bytes(img.numpy()) for img in dm.train_set.images[:20_000]}
    official = load_shipped()
    assert torch.equal(dm.test_set.images, official["test_x"].unsqueeze(1)) and torch.equal(
        dm.test_set.labels, official["test_y"]
    )

    same = ImageDataModule(val_size=5000, split_seed=3)
    same.setup()
    other = ImageDataModule(val_size=5000, split_seed=4)
    other.setup()
    assert torch.equal(same.val_set.labels, dm.val_set.labels) and torch.equal(same.val_set.images, dm.val_set.images)
    assert not torch.equal(other.val_set.images, dm.val_set.images)


def test_val_size_zero_means_no_validation_and_too_large_is_refused():
    dm = ImageDataModule(val_size=0)
    dm.setup()
    assert len(dm.train_set) == 60_000 and dm.val_set is None and dm.val_dataloader() == []
    with pytest.raises(ConfigError, match="val_size=60000 is not allowed: it must be smaller than the 60000"):
        ImageDataModule(val_size=60_000).setup()


def test_folds_partition_the_training_images_the_same_way_for_every_run():
    folds = [ImageDataModule(folds=5, fold=i, split_seed=3, seed=i).split(103) for i in range(5)]
    vals = [set(val.tolist()) for val, _ in folds]
    assert sorted(len(v) for v in vals) == [20, 20, 21, 21, 21]
    assert set().union(*vals) == set(range(103)) and sum(map(len, vals)) == 103  # disjoint, and all of them
    for val, train in folds:
        assert set(train.tolist()) == set(range(103)) - set(val.tolist())
    again = ImageDataModule(folds=5, fold=2, split_seed=3, seed=99).split(103)
    assert torch.equal(again[0], folds[2][0])  # fixed by split_seed, whatever the training seed
    assert not torch.equal(ImageDataModule(folds=5, fold=2, split_seed=4).split(103)[0], folds[2][0])


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["data.folds=5"], "data.fold=null is not allowed with data.folds=5: give data.fold=0..4"),
        (["data.folds=5", "data.fold=5"], "data.fold=5 is not allowed: the folds are numbered 0..4"),
        (["data.folds=1", "data.fold=0"], "data.folds=1 is not allowed"),
    ],
)
def test_bad_folds_are_refused_in_one_line(make_cfg, overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        check(make_cfg(*overrides))


def test_batches_are_whole_index_batches_converted_on_transfer():
    dm = ImageDataModule(val_size=100, batch_size=64)
    dm.setup()
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (64, 1, 28, 28) and images.dtype == torch.uint8 and labels.shape == (64,)
    x, y = dm.on_after_batch_transfer((images, labels), 0)
    assert x.shape == (64, 1, 28, 28) and x.dtype == torch.float32
    assert 0 <= float(x.min()) and float(x.max()) <= 1 and torch.equal(y, labels)
    assert torch.allclose(x * 255, images.float())
    assert len(dm.train_dataloader()) == -(-59_900 // 64)


def test_augmentation_only_while_training():
    class FakeTrainer:
        training = True

    dm = ImageDataModule(augment={"degrees": 15, "translate": 0.1, "scale": 0.1})
    dm.trainer = FakeTrainer()
    images = load_shipped()["test_x"][:16].unsqueeze(1)
    labels = torch.zeros(16, dtype=torch.long)
    plain = images.float() / 255
    augmented, _ = dm.on_after_batch_transfer((images, labels), 0)
    assert augmented.shape == plain.shape and not torch.allclose(augmented, plain)
    # Each image gets its own transform, and ink stays roughly the same amount.
    changes = (augmented - plain).abs().flatten(1).sum(1)
    assert changes.unique().numel() == 16
    assert torch.allclose(augmented.sum((1, 2, 3)), plain.sum((1, 2, 3)), rtol=0.35)
    FakeTrainer.training = False
    evaluated, _ = dm.on_after_batch_transfer((images, labels), 0)
    assert torch.equal(evaluated, plain)


def test_a_warp_without_motion_is_the_identity():
    x = torch.rand(4, 1, 28, 28)
    assert torch.allclose(warp(x, degrees=0, translate=0, scale=0, elastic=0), x, atol=1e-5)


def test_soft_augmentation_blurs_its_share_of_the_images(mnist):
    x = mnist["test_x"][:400, None].float() / 255
    soft = random_distortion(x, {"soft": 0.5})
    changed = (soft - x).abs().flatten(1).amax(1) > 0.05
    assert 140 < int(changed.sum()) < 260 and torch.equal(soft[~changed], x[~changed])
    edges = lambda im: (im[..., 1:] - im[..., :-1]).abs().sum()  # noqa: E731 - sharp strokes have strong edges
    assert edges(soft[changed]) < 0.8 * edges(x[changed])  # detail lost
    assert 0 <= float(soft.min()) and float(soft.max()) <= 1


@pytest.mark.parametrize(
    "augment, message",
    [
        ("{soft: 1.5}", "data.augment.soft=1.5 is not allowed: input should be less than or equal to 1"),
        ("{rotation: 10}", "data.augment.rotation=10 is not allowed: there is no such setting here"),
        ("{degrees: -5}", "data.augment.degrees=-5 is not allowed: input should be greater than or equal to 0"),
    ],
)
def test_bad_augmentation_is_refused_up_front(make_cfg, augment, message):
    with pytest.raises(ConfigError, match=message):
        check(make_cfg(f"data.augment={augment}"))


def test_elastic_warp_moves_pixels_by_at_most_its_size():
    # On a ramp whose value is the column index, a warped pixel's value says where it came from.
    ramp = torch.arange(28.0).expand(8, 1, 28, 28)
    warped = random_distortion(ramp, {"elastic": 2.0})
    moved = (warped - ramp)[..., 4:-4, 4:-4].abs()  # away from the zero padding
    assert 0.5 < float(moved.max()) <= 2.0 + 1e-4
    assert moved.flatten(1).mean(1).unique().numel() == 8  # a field of its own for each image
    assert not torch.allclose(moved[0, 0, 0], moved[0, 0, -1])  # smooth but not rigid


def test_sampler_shards_ranks_disjointly_and_reshuffles_each_epoch():
    shards = [torch.cat(list(IndexBatchSampler(103, 10, True, seed=1, rank=r, world_size=2))) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 52  # padded like DistributedSampler
    assert set(shards[0].tolist()) | set(shards[1].tolist()) == set(range(103))
    assert len(set(shards[0].tolist()) & set(shards[1].tolist())) <= 1
    sampler = IndexBatchSampler(103, 10, True, seed=1)
    first = torch.cat(list(sampler))
    sampler.set_epoch(1)
    assert not torch.equal(first, torch.cat(list(sampler)))
    assert len(sampler) == 11 and sorted(first.tolist()) == list(range(103))
    assert torch.equal(torch.cat(list(IndexBatchSampler(25, 10, False))), torch.arange(25))


@pytest.mark.parametrize(
    "damage", [lambda b: b[: len(b) // 2], lambda b: b[:5], lambda b: (2049).to_bytes(4, "big") + b[4:]]
)
def test_damaged_idx_file_is_refused_naming_the_folder(mnist_copy: Path, damage):
    target = mnist_copy / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    target.write_bytes(damage(target.read_bytes()))
    with pytest.raises(DataError, match="torchvision's MNIST cannot read its IDX files") as err:
        ImageDataModule(data_dir=str(mnist_copy)).setup()
    assert str(target.parent) in str(err.value) and "\n" not in str(err.value)


def _shipped_copy(folder: Path, change) -> Path:
    folder.mkdir()
    for gz in SHIPPED_DIR.glob("*.gz"):
        (folder / gz.name).write_bytes(change(gz.name, gz.read_bytes()))
    return folder


def test_mnists_checksums_guard_its_shipped_copy_only(mnist_copy: Path, tmp_path: Path, monkeypatch):
    target = mnist_copy / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    raw = target.read_bytes()
    target.write_bytes(raw[:-1] + bytes([raw[-1] ^ 0xFF]))  # one pixel changed: a valid IDX file
    ImageDataModule(data_dir=str(mnist_copy)).setup()  # a folder's files may be any IDX dataset's

    def one_pixel(name: str, data: bytes) -> bytes:
        if not name.startswith("t10k-labels"):
            return data
        raw = gzip.decompress(data)
        return gzip.compress(raw[:-1] + bytes([raw[-1] ^ 0xFF]))  # the last label changed: a valid IDX file

    monkeypatch.setattr(mnist, "SHIPPED_DIR", _shipped_copy(tmp_path / "changed", one_pixel))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz: its MD5 differs from the official file's"):
        mnist.load_shipped()
    monkeypatch.setattr(mnist, "SHIPPED_DIR", _shipped_copy(tmp_path / "cut", lambda name, data: data[:200]))
    with pytest.raises(DataError, match="cannot read or decompress"):
        mnist.load_shipped()


def test_data_folder_is_left_untouched_on_error(mnist_copy: Path):
    target = mnist_copy / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    target.write_bytes(target.read_bytes()[:100])
    before = {p.name: p.read_bytes() for p in target.parent.iterdir()}
    with pytest.raises(DataError):
        mnist.load_torchvision(mnist_copy, "MNIST")
    assert {p.name: p.read_bytes() for p in target.parent.iterdir()} == before


def test_missing_files_fall_back_to_download_and_say_where_to_put_them(tmp_path: Path, monkeypatch):
    calls = []

    class OfflineMNIST:
        def __init__(self, root, train, download):
            calls.append((root, train, download))
            raise RuntimeError("no network")

    monkeypatch.setattr("torchvision.datasets.MNIST", OfflineMNIST)
    with pytest.raises(DataError) as err:
        ImageDataModule(data_dir=str(tmp_path), download="MNIST").setup()
    assert calls == [(str(tmp_path), True, True)]
    text = str(err.value)
    assert (
        str(tmp_path / "OfflineMNIST" / "raw") in text and "put the four files there" in text and "no network" in text
    )


def _write_csv(path: Path, rows: list[str], label: bool = True) -> Path:
    header = (["label"] if label else []) + [f"pixel{i}" for i in range(784)]
    path.write_text("\n".join([",".join(header), *rows]) + "\n")
    return path


def test_kaggle_csv_is_read_with_and_without_labels(tmp_path: Path, mnist):
    images, labels = mnist["test_x"][:5], mnist["test_y"][:5]
    rows = [",".join(map(str, [int(y), *x.flatten().tolist()])) for x, y in zip(images, labels)]
    x, y = read_image_csv(_write_csv(tmp_path / "train.csv", rows))
    assert torch.equal(x, images) and torch.equal(y, labels)
    x, y = read_image_csv(_write_csv(tmp_path / "test.csv", [r.split(",", 1)[1] for r in rows], label=False))
    assert torch.equal(x, images) and y is None

    dm = ImageDataModule(train_csv=str(tmp_path / "train.csv"), val_size=2)
    dm.setup()
    assert len(dm.train_set) == 3 and len(dm.val_set) == 2 and dm.test_set is None


@pytest.mark.parametrize(
    "row, message",
    [
        ("1," + ",".join(["0"] * 783), "line 3: 784 columns, expected 785"),
        ("1," + ",".join(["0"] * 783) + ",x", "line 3, column 785: 'x' is not an integer"),
        ("1," + ",".join(["0"] * 783) + ",256", "line 3: pixel value outside 0-255"),
        ("12," + ",".join(["0"] * 784), "line 3: label outside 0-9"),
    ],
)
def test_bad_csv_rows_are_refused_with_their_line_number(tmp_path: Path, row, message):
    good = "3," + ",".join(["0"] * 784)
    path = _write_csv(tmp_path / "bad.csv", [good, row])
    with pytest.raises(DataError, match=message) as err:
        read_image_csv(path)
    assert str(path) in str(err.value)


def test_empty_or_headless_csv_is_refused(tmp_path: Path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty"):
        read_image_csv(tmp_path / "empty.csv")
    with pytest.raises(DataError, match="no rows"):
        read_image_csv(_write_csv(tmp_path / "header_only.csv", []))
    (tmp_path / "narrow.csv").write_text("label,a,b\n1,2,3\n")
    with pytest.raises(DataError, match="line 1: header has 3 columns"):
        read_image_csv(tmp_path / "narrow.csv")
    with pytest.raises(DataError, match="no such CSV"):
        read_image_csv(tmp_path / "missing.csv")


@pytest.mark.slow  # builds the wheel: pip install . (not editable) must still find MNIST
def test_the_wheel_ships_mnist_beside_the_reader(tmp_path: Path):
    import shutil
    import subprocess
    import sys
    import zipfile

    from support import ROOT

    # A clean copy: an editable install's egg-info would add every file it once listed.
    left_out = shutil.ignore_patterns(".*", "*.egg-info", "build", "outputs", "tests", "bench", "__pycache__")
    checkout = shutil.copytree(ROOT, tmp_path / "checkout", ignore=left_out)
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)]
    subprocess.run([*build, str(checkout)], check=True, capture_output=True)
    names = zipfile.ZipFile(next(tmp_path.glob("mnist_lab-*.whl"))).namelist()
    shipped = SHIPPED_DIR.relative_to(SHIPPED_DIR.parents[2])  # mnist_lab/data/mnist_files
    assert {f"{shipped.as_posix()}/{name}.gz" for name in mnist.MD5S} <= set(names)
    assert not [n for n in names if n.startswith(("support/", "tests/"))]  # what only the tests use stays out


def _idx_folder(folder: Path, images: np.ndarray, labels: np.ndarray) -> Path:
    for part in ("train", "t10k"):  # torchvision's MNIST layout
        write_idx(folder / "MNIST" / "raw" / f"{part}-images-idx3-ubyte", images)
        write_idx(folder / "MNIST" / "raw" / f"{part}-labels-idx1-ubyte", labels)
    return folder


def test_a_folders_labels_must_each_name_a_class(tmp_path: Path):
    images = np.tile(np.arange(28 * 28) % 256, (20, 1)).reshape(20, 28, 28)  # pixel mean 127.2 (0.4988)
    folder = _idx_folder(tmp_path / "d", images, np.arange(20) % 4)
    with pytest.raises(DataError, match=r"labels go up to 3, but data.classes names 3 classes"):
        ImageDataModule(data_dir=str(folder), classes=["a", "b", "c"], val_size=5).setup()
    data = ImageDataModule(data_dir=str(folder), classes=["a", "b", "c", "d"], val_size=5)
    data.setup()
    assert data.mean == pytest.approx(images.mean() / 255, abs=1e-4)  # its own images', not MNIST's 0.1307


def test_a_folder_of_blank_images_is_refused_before_training(tmp_path: Path):
    folder = _idx_folder(tmp_path / "d", np.zeros((20, 28, 28)), np.arange(20) % 10)
    with pytest.raises(DataError, match=r"every training pixel is 0 \(std 0\): there is nothing to learn from"):
        ImageDataModule(data_dir=str(folder), val_size=5).setup()


def test_a_folders_images_must_have_the_configured_size(tmp_path: Path):
    folder = _idx_folder(tmp_path / "d", np.zeros((20, 32, 32)), np.arange(20) % 10)
    with pytest.raises(DataError, match=r"the train images are 32x32 pixels, not 28x28; set data.image_size"):
        ImageDataModule(data_dir=str(folder), val_size=5).setup()


def test_another_dataset_needs_its_own_folder(make_cfg):
    with pytest.raises(ConfigError, match=r"data.data_dir=null is not allowed with data.download=FashionMNIST"):
        build(make_cfg("data=fashion_mnist").data)
