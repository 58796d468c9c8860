"""docs/own_model.md and docs/own_dataset.md, followed as written: their files in a temporary folder, their
commands run as a user runs them (on tiny runs), their printed lines checked."""

from __future__ import annotations

import csv
import json
import shlex
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mnist_lab.command_line import require_extras
from mnist_lab.data.datamodule import ImageDataModule
from mnist_lab.models.classifier import load_classifier
from support import ROOT, doc_steps, run_script, write_idx

pytestmark = pytest.mark.slow  # each test runs the scripts as subprocesses, end to end
TINY = ("debug=tiny",)  # 1 epoch of 10 batches: what the page's commands become here


def write_files(files: dict[str, str], folder: Path, **replace: str) -> None:
    for name, text in files.items():
        for old, new in replace.items():
            text = text.replace(old, new)
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def page_steps(page: str, section: str = "") -> tuple[dict[str, str], list[str], list[tuple[str, str]]]:
    """``doc_steps`` of the page, or a skip naming the extra one of its commands needs (export.py: onnx, ...)."""
    steps = doc_steps(ROOT / "docs" / page, section)
    for command in steps[1]:
        words = shlex.split(command)
        try:
            require_extras(Path(words[1]).stem, words[2:])
        except SystemExit as missing:
            pytest.skip(str(missing).removeprefix("error: "))
    return steps


def finished_runs(folder: Path) -> list[Path]:
    return sorted(p.parent for p in (folder / "outputs").glob("runs/*/result.json"))


def follow(command: str, folder: Path, run: Path | None, extra: tuple[str, ...] = (), tiny: bool = True) -> str:
    """One of the page's commands, run in ``folder`` with its config folder and module, ``<run>`` made ``run``;
    a training ``tiny`` (debug=tiny) unless told otherwise."""
    words = shlex.split(command.replace("outputs/runs/<run>", str(run)))
    assert words[0] == "python", command
    script, overrides = words[1], words[2:]
    if script == "train.py":
        overrides += [*(TINY if tiny else ()), *extra]
        if any(w.startswith("sweep=") for w in overrides):
            overrides.append(f"hydra.sweep.dir={folder / 'sweep'}")
    done = run_script(
        script,
        f"--config-dir={folder / 'conf'}",
        *overrides,
        cwd=folder,
        env={"PYTHONPATH": str(folder), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def test_the_own_model_page_adds_a_model_that_trains_sweeps_evaluates_predicts_and_exports(
    tmp_path, mnist, monkeypatch
):
    files, commands, transcripts = page_steps("own_model.md")
    assert set(files) == {"my_nets.py", "conf/model/tiny_cnn.yaml"}
    write_files(files, tmp_path)
    Image.fromarray(mnist["test_x"][0].numpy()).save(tmp_path / "digit.png")
    # The wrong-typed argument first: refused in one line, before any data is read.
    [(command, printed)] = transcripts
    words = shlex.split(command)
    refused = run_script(
        words[1], f"--config-dir={tmp_path / 'conf'}", *words[2:], cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)}
    )
    assert refused.returncode == 1 and refused.stderr.strip() == printed
    assert "Seed set" not in refused.stdout + refused.stderr and not (tmp_path / "outputs").exists()

    first_run = None
    for command in commands:
        output = follow(command, tmp_path, first_run)
        if command.startswith("python train.py model=tiny_cnn") and first_run is None:
            [first_run] = finished_runs(tmp_path)
            assert "TinyCNN: 1,370 parameters" in output  # 8 channels: 8 * 9 + 8, then 8 * 16 * 10 + 10
    monkeypatch.syspath_prepend(str(tmp_path))  # my_nets, as the scripts found it
    model = load_classifier(json.loads((first_run / "result.json").read_text())["checkpoint"])
    assert type(model.net).__name__ == "TinyCNN" and model.net[0].out_channels == 8
    # The search: its own search space, three trials.
    rows = list(csv.DictReader((tmp_path / "sweep" / "summary.csv").open()))
    assert len(rows) == 3 and all(r["status"] == "ok" for r in rows)
    assert all("channels=" in r["run"] and "lr=" in r["run"] for r in rows)
    assert len(list((tmp_path / "outputs").glob("runs/*_export/model.onnx"))) == 1


@pytest.fixture
def shapes_folder(tmp_path: Path) -> Path:
    """A small IDX dataset of three classes, as a user's folder of a dataset in MNIST's format."""
    generator = np.random.default_rng(0)

    def images(count: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.arange(count) % 3
        x = generator.integers(0, 40, (count, 28, 28))
        x[labels == 0, 12:16, 4:24] = 230  # a bar across
        x[labels == 1, 4:24, 12:16] = 230  # a bar down
        x[labels == 2, 8:20, 8:20] = 230  # a block
        return x, labels

    folder = tmp_path / "data"
    for part, count in (("train", 3000), ("t10k", 90)):  # torchvision's MNIST layout, uncompressed
        x, y = images(count)
        write_idx(folder / "MNIST" / "raw" / f"{part}-images-idx3-ubyte", x)
        write_idx(folder / "MNIST" / "raw" / f"{part}-labels-idx1-ubyte", y)
    return folder


def served_classes_and_photo(ckpt: str, photo: Path) -> None:
    """serve.py's API names the checkpoint's classes."""
    pytest.importorskip("fastapi", reason='serve.py needs the serve extra: pip install -e ".[serve]"')
    from fastapi.testclient import TestClient

    from mnist_lab.inference.backends import load_network
    from mnist_lab.serving.app import create_app

    client = TestClient(create_app(load_network(ckpt), Path(ckpt), max_bytes=10**6, max_pixels=10**7, max_images=1))
    assert client.get("/model").json()["classes"] == ["shirt", "shoe", "bag"]
    [result] = client.post("/predict", files=[("images", (photo.name, photo.read_bytes()))]).json()["results"]
    assert (result["class"], result["label"], len(result["probabilities"])) == ("bag", 2, 3)


def computed_mean(folder: Path) -> float:
    """The training images' mean pixel, as the data module computes it (all but the validation split)."""
    data = ImageDataModule(data_dir=str(folder), classes=["a", "b", "c"], val_size=1000)
    data.setup()
    return data.mean


def test_the_own_dataset_page_trains_and_predicts_with_its_class_names(tmp_path, shapes_folder):
    files, commands, _ = page_steps("own_dataset.md", "3. IDX files")
    assert set(files) == {"conf/data/my_clothes.yaml"}
    write_files(files, tmp_path, **{"/data/my_clothes": str(shapes_folder)})
    # A picture of a block on light paper, as a user photographs one: read as the whole picture.
    page = np.full((60, 60), 240, np.uint8)
    page[15:45, 15:45] = 20
    Image.fromarray(page).save(tmp_path / "photo.jpg")

    run = None
    outputs = []
    for command in commands:
        outputs.append(follow(command, tmp_path, run, extra=("trainer.max_epochs=3",)))
        if run is None:
            [run] = finished_runs(tmp_path)
    model = load_classifier(json.loads((run / "result.json").read_text())["checkpoint"])
    assert model.classes == ["shirt", "shoe", "bag"] and model.net[-1].out_features == 3
    assert model.hparams.mean == pytest.approx(computed_mean(shapes_folder), abs=1e-4)  # computed, not MNIST's
    evaluated, predicted, photo, exported = outputs[1:]
    assert "shirt" in evaluated and "bag" in evaluated  # the per-class report names the classes
    assert "test image 0: true shirt, predicted shirt" in predicted
    assert "test image 2: true bag, predicted bag" in predicted
    assert "photo.jpg: bag" in photo
    served_classes_and_photo(json.loads((run / "result.json").read_text())["checkpoint"], tmp_path / "photo.jpg")
    assert "3 predictions differ" not in exported and "accuracy 100.00 %" in exported


def light_on_dark_block(path: Path, colour: tuple[int, int, int] = (255, 255, 255)) -> Path:
    """A photo-like picture of a block, larger than any training image."""
    page = np.full((60, 60, 3), 20, np.uint8)
    page[15:45, 15:45] = colour
    Image.fromarray(page).save(path)
    return path


def test_the_own_datamodule_section_trains_every_script_on_a_lightning_datamodule(tmp_path):
    """Section 1: a DataModule written as Lightning's docs write one, importing nothing of mnist_lab."""
    files, commands, _ = page_steps("own_dataset.md", "1. A DataModule of your own")
    assert set(files) == {"my_data.py", "conf/data/bars.yaml"} and "mnist_lab" not in files["my_data.py"]
    write_files(files, tmp_path)
    light_on_dark_block(tmp_path / "photo.png")
    run, outputs = None, []
    for command in commands:
        outputs.append(follow(command, tmp_path, run, extra=("trainer.max_epochs=3",), tiny=False))
        run = run or finished_runs(tmp_path)[0]
    result = json.loads((run / "result.json").read_text())
    assert result["test_acc"] >= 0.9  # an easy task: chance is a third
    model = load_classifier(result["checkpoint"])
    assert (model.hparams.image_size, model.hparams.channels, model.classes) == (16, 1, ["0", "1", "2"])
    assert model.hparams.reading == "resized" and 0.1 < model.hparams.mean < 0.5  # found in a batch
    evaluated, predicted, exported = outputs[1:]
    assert "on 120 images" in evaluated and "photo.png: 2" in predicted  # the block
    assert "0 predictions differ" in exported


@pytest.fixture
def colour_folder(tmp_path: Path) -> Path:
    """An ImageFolder tree of 40x30 colour pictures: a red block, a green bar, a blue bar, on noise; no test/."""
    generator = np.random.default_rng(0)
    shapes = {"block": (slice(8, 22), slice(12, 28), 0), "bar": (slice(12, 18), slice(2, 38), 1)}
    shapes["post"] = (slice(2, 28), slice(17, 23), 2)
    for name, (rows, cols, channel) in shapes.items():
        (tmp_path / "shapes" / "train" / name).mkdir(parents=True)
        for i in range(150):
            picture = generator.integers(0, 60, (30, 40, 3), dtype=np.uint8)
            picture[rows, cols, channel] = 230
            Image.fromarray(picture).save(tmp_path / "shapes" / "train" / name / f"{i:03d}.png")
    return tmp_path / "shapes"


def test_the_image_folder_section_trains_on_colour_pictures_and_names_their_classes(tmp_path, colour_folder):
    """Section 2: data=image_folder on a tree without test/ (held out of train/), colour and resized."""
    _, commands, _ = page_steps("own_dataset.md", "2. A folder of images per class")
    light_on_dark_block(tmp_path / "photo.png", colour=(230, 0, 0))
    (tmp_path / "conf").mkdir()  # no config of the user's own: the shipped data=image_folder
    run, outputs = None, []
    for command in commands:
        outputs.append(follow(command, tmp_path, run, extra=("trainer.max_epochs=3",), tiny=False))
        run = run or finished_runs(tmp_path)[0]
    result = json.loads((run / "result.json").read_text())
    assert result["test_acc"] >= 0.9
    model = load_classifier(result["checkpoint"])
    assert (model.hparams.image_size, model.hparams.channels) == (32, 3)
    assert model.classes == ["bar", "block", "post"] and model.net[0].in_channels == 3
    assert "photo.png: block" in outputs[1]
