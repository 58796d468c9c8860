"""What ``python predict.py`` does: classify a user's pictures the way the training images were made."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Iterable, Optional

import torch
import torch.nn.functional as F
from pydantic import NonNegativeInt, PositiveInt
from torchvision.utils import save_image

from mnist_lab.data.contract import tensors
from mnist_lab.data.datamodule import data_of_run
from mnist_lab.data.kaggle_csv import read_image_csv, write_submission
from mnist_lab.data.mnist import to_unit
from mnist_lab.errors import ConfigError, InputError
from mnist_lab.inference.backends import Backend, Network, load_network
from mnist_lab.inference.reading import read_image, unexpected
from mnist_lab.logs import get_logger
from mnist_lab.training.hparams import trained_with
from mnist_lab.validation import Text

log = get_logger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
SHOWN_SCALE = 4  # test_index pictures are saved 4x MNIST's 28 px, large enough to see

Row = dict[str, object]


def as_list(value: Any) -> list:
    """A setting that takes one value or a list of them (``inputs=a.png``, ``inputs=[a.png,b/]``) as a list."""
    return [value] if isinstance(value, (str, int)) else list(value or [])


def images_in(folder: Path) -> list[Path]:
    """The image files under ``folder``, sorted; links that lead out of it are left out."""
    inside = folder.resolve()
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and p.resolve().is_relative_to(inside)
    )


def image_paths(inputs: Iterable[str]) -> list[tuple[str, Optional[Path], Optional[str]]]:
    """Expand files and folders into (name, path, error) rows, each file once however often it is named;
    a folder without images is an error row."""
    rows = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = images_in(path)
            rows += [(str(p), p, None) for p in found] or [
                (item, None, "folder holds no images (" + ", ".join(sorted(IMAGE_SUFFIXES)) + ")")
            ]
        elif path.is_file():
            rows.append((item, path, None))
        else:
            rows.append((item, None, "no such file or folder"))
    unique: dict = {}  # by the file it names: the first name given for it
    for name, path, error in rows:
        unique.setdefault(path.resolve() if path else name, (name, path, error))
    return list(unique.values())


COLUMNS = ["input", "class", "label", "probability", "error"]  # predictions.csv


def _row(name: str, probs: torch.Tensor, classes: list[str]) -> Row:
    label = int(probs.argmax())
    return {
        "input": name,
        "class": classes[label],
        "label": label,
        "probability": round(float(probs.max()), 4),
        "error": "",
    }


def _failed(name: str, error: str) -> Row:
    """A failed input's row: its error line, on the console and in predictions.csv."""
    log.info(f"{name}: error: {error}")
    return {"input": name, "class": "", "label": "", "probability": "", "error": error}


def top3(probs: torch.Tensor, classes: list[str]) -> str:
    p, labels = probs.topk(min(3, len(probs)))
    return "  ".join(f"{classes[int(label)]}: {float(pi):.3f}" for label, pi in zip(labels, p))


def predict_files(network: Network, inputs: Iterable[str], max_pixels: int, save_dir: Optional[Path]) -> list[Row]:
    """One line and row per image file, failed ones too; the 28x28 each became is saved in ``save_dir`` if given."""
    files = image_paths(inputs)
    if len(files) > 1:
        log.info(f"Reading {len(files)} inputs")
    rows = []
    for name, file, error in files:
        try:
            if error:
                raise InputError(error)
            reading = read_image(network, file, max_pixels)
        except InputError as err:
            rows.append(_failed(name, str(err)))
            continue
        except Exception as err:  # noqa: BLE001 - a bug met on one image must not cost the user the others
            rows.append(_failed(name, unexpected(name, err)))
            continue
        rows.append(_row(name, reading.probabilities, network.model.classes))
        log.info(f"{name}: {reading.name}   (top 3  {top3(reading.probabilities, network.model.classes)})")
        if save_dir:
            save_dir.mkdir(exist_ok=True)
            save_image(reading.seen, save_dir / f"{len(rows):04d}_{Path(name).stem}.png")
    return rows


def predict_test_images(network: Network, indices: list[int], data_dir: Optional[str], out: Path) -> list[Row]:
    """Test images of the checkpoint's data (in ``data_dir`` if given) by index, each with its true class and
    saved, enlarged, in ``out``."""
    test = tensors(data_of_run(network.model.run_config, data_dir), "test", max(indices, default=0) + 1)
    if test is None:
        raise ConfigError("test_index needs a labelled test set: the checkpoint's data has none.")
    (images, labels), classes, rows = test, network.model.classes, []
    for i in indices:
        if i >= len(labels):
            rows.append(_failed(f"test[{i}]", f"the test set has images 0..{len(labels) - 1}"))
            continue
        probs = network.probabilities(images[i : i + 1])[0]
        image = out / f"test_{i}.png"
        save_image(F.interpolate(images[i : i + 1], scale_factor=SHOWN_SCALE), image)
        log.info(
            f"test image {i}: true {classes[int(labels[i])]}, predicted {classes[int(probs.argmax())]}"
            f"   (top 3  {top3(probs, classes)}); saved {image}"
        )
        rows.append(_row(f"test[{i}]", probs, classes))
    return rows


def predict_kaggle_csv(network: Network, path: Path, out: Path) -> None:
    images, _ = read_image_csv(path)
    labels = network.probabilities(to_unit(images.unsqueeze(1))).argmax(-1)
    write_submission(labels, out / "submission.csv")
    log.info(f"{path}: {len(labels)} digits -> {out / 'submission.csv'}")


def write_predictions(rows: list[Row], path: Path) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    log.info(f"Wrote {path}")


def predict(
    ckpt_path: Text,
    output_dir: str,
    inputs: str | list[str],  # inputs=a.png is that one file
    test_index: Optional[NonNegativeInt | list[NonNegativeInt]],
    kaggle_csv: Optional[str],
    save_inputs: bool,
    save_csv: bool,
    backend: Backend,
    onnx_path: Optional[str],
    max_pixels: PositiveInt,
    data_dir: Optional[str],
) -> None:
    """conf/predict.yaml's task: print a prediction per input; exits with 1 when any input failed (the others are
    still predicted)."""
    if not (inputs or test_index is not None or kaggle_csv):
        raise ConfigError("nothing to predict: give inputs=[a.png,folder/], test_index=N or kaggle_csv=test.csv")
    network = load_network(ckpt_path, backend, onnx_path)
    log.info(trained_with(network.model.run_config))
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = predict_files(network, as_list(inputs), max_pixels, out / "inputs" if save_inputs else None)
    if test_index is not None:
        rows += predict_test_images(network, as_list(test_index), data_dir, out)
    if kaggle_csv:
        predict_kaggle_csv(network, Path(kaggle_csv), out)
    if save_csv and rows:
        write_predictions(rows, out / "predictions.csv")
    failures = sum(1 for row in rows if row["error"])
    if failures:
        log.info(f"{failures} input(s) could not be predicted.")
        raise SystemExit(1)
