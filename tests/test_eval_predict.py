from __future__ import annotations

import csv
import importlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mnist_lab.command_line import run_task
from mnist_lab.errors import ConfigError
from mnist_lab.inference.backends import Network
from mnist_lab.inference.evaluation import evaluate
from mnist_lab.inference.exporting import export
from mnist_lab.inference.prediction import predict
from mnist_lab.inference.preprocess import InputError, open_image, to_mnist
from mnist_lab.models.classifier import load_classifier
from support import bars_config, compose_config, run_script
from support.drawings import write_drawings
from support.photos import PAGE, photo, write_photos
from support.soft_digits import soft_page
from support.user_data import pictures, save_pictures


@pytest.mark.slow  # a subprocess of train.py, eval.py or predict.py
def test_eval_reproduces_the_training_runs_test_accuracy(trained_run, tmp_path: Path):
    out = tmp_path / "eval"
    result = run_script(
        "eval.py", f"ckpt_path={trained_run['ckpt']}", "trainer.accelerator=cpu", f"hydra.run.dir={out}", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_acc"] == pytest.approx(trained_run["test_acc"], abs=5e-5)
    assert metrics["images"] == 10_000 and len(metrics["per_class"]) == 10
    assert sum(r["support"] for r in metrics["per_class"]) == 10_000
    assert all(0.8 < r["recall"] <= 1 and 0.8 < r["precision"] <= 1 for r in metrics["per_class"])
    assert "class  precision  recall" in result.stdout
    for name in ("confusion_matrix.png", "misclassified.png"):
        assert (out / name).stat().st_size > 5000
    assert list(out.glob("events.out.tfevents.*"))


@pytest.mark.slow  # a subprocess of train.py, eval.py or predict.py
def test_eval_on_a_labelled_csv(trained_run, tmp_path: Path, mnist):
    rows = [
        ",".join(map(str, [int(y), *x.flatten().tolist()])) for x, y in zip(mnist["test_x"][:50], mnist["test_y"][:50])
    ]
    (tmp_path / "labelled.csv").write_text(
        "label," + ",".join(f"pixel{i}" for i in range(784)) + "\n" + "\n".join(rows) + "\n"
    )
    out = tmp_path / "eval"
    result = run_script(
        "eval.py",
        f"ckpt_path={trained_run['ckpt']}",
        "data=csv",
        f"data.test_csv={tmp_path / 'labelled.csv'}",
        "trainer.accelerator=cpu",
        f"hydra.run.dir={out}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((out / "metrics.json").read_text())["images"] == 50


@pytest.mark.slow  # a subprocess of train.py, eval.py or predict.py
@pytest.mark.parametrize(
    "ckpt, message",
    [
        (None, "error: ckpt_path is missing"),
        ("missing.ckpt", "no such file"),
        ("truncated.ckpt", "cannot be read as a safe (weights-only) checkpoint"),
        ("pickled.ckpt", "cannot be read as a safe (weights-only) checkpoint"),
        ("foreign.ckpt", "not a checkpoint of this project"),
    ],
)
def test_eval_refuses_bad_checkpoints_in_one_line(trained_run, tmp_path: Path, ckpt, message):
    good = trained_run["ckpt"].read_bytes()
    (tmp_path / "truncated.ckpt").write_bytes(good[: len(good) // 3])
    torch.save({"model": torch.nn.Linear(2, 2)}, tmp_path / "pickled.ckpt")  # a whole pickled module
    torch.save({"state_dict": {"w": torch.zeros(2)}, "epoch": 3}, tmp_path / "foreign.ckpt")
    result = run_script("eval.py", *([f"ckpt_path={tmp_path / ckpt}"] if ckpt else []), cwd=tmp_path)
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "outputs").exists()  # a refused run leaves no folder behind


def test_to_mnist_recovers_an_mnist_digit(mnist):
    digit = mnist["test_x"][0]
    again = to_mnist(
        255 - torch.nn.functional.interpolate(digit[None, None].float(), size=(200, 200))[0, 0].byte().numpy()
    )
    original = digit.float() / 255
    assert again.shape == (28, 28) and again.max() == 1
    assert torch.nn.functional.cosine_similarity(again.flatten(), original.flatten(), dim=0) > 0.8
    with pytest.raises(InputError, match="blank"):
        to_mnist(torch.full((50, 60), 255, dtype=torch.uint8).numpy())


def test_a_sideways_phone_photo_is_turned_upright_by_its_exif_tag(tmp_path: Path, mnist):
    [(path, _)] = write_photos(mnist["test_x"][:1], mnist["test_y"][:1], tmp_path, seed=0)  # seed 0: stored sideways
    with Image.open(path) as stored:
        assert stored.getexif().get(0x0112) in (6, 8) and stored.size == PAGE[::-1]
    assert open_image(path, 40_000_000).shape == (PAGE[1], PAGE[0], 3)


@pytest.mark.slow  # a subprocess of train.py, eval.py or predict.py
def test_predict_recognises_photos_and_drawings_and_reports_bad_inputs(trained_run, tmp_path: Path, mnist):
    files = write_drawings(mnist["test_x"][:40], mnist["test_y"][:40], tmp_path / "drawings")
    photos = write_photos(mnist["test_x"][100:200], mnist["test_y"][100:200], tmp_path / "photos")
    rng = np.random.default_rng(0)
    blank_pages = [tmp_path / f"blank_page{i}.jpg" for i in range(3)]
    for page in blank_pages:
        photo(None, rng).save(page, quality=85)
    white_on_black = tmp_path / "white_on_black.png"
    Image.fromarray(mnist["test_x"][1].numpy()).resize((280, 280)).save(white_on_black)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "notes.png").write_text("not an image")
    Image.new("L", (300, 200), 255).save(bad / "blank.png")
    Image.new("L", (3000, 3000), 255).save(bad / "huge.png")
    (tmp_path / "empty").mkdir()
    out = tmp_path / "out"
    result = run_script(
        "predict.py",
        f"ckpt_path={trained_run['ckpt']}",
        f"inputs=[{tmp_path / 'drawings'},{tmp_path / 'photos'},{white_on_black},{bad},{tmp_path / 'empty'},"
        + ",".join(map(str, blank_pages))
        + "]",
        "max_pixels=4000000",
        "save_inputs=true",
        "save_csv=true",
        f"hydra.run.dir={out}",
        cwd=tmp_path,
    )
    assert result.returncode == 1
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines() if ": " in line)
    correct = sum(lines[str(path)].startswith(str(label)) for path, label in files)
    assert correct >= 38, result.stdout  # 40 before photos were handled and 40 after (fp32 model), no regression
    assert sum(lines[str(path)].startswith(str(label)) for path, label in photos) >= 95, result.stdout  # 95 %; was 26 %
    assert all("no digit found" in lines[str(page)] for page in blank_pages)
    assert lines[str(white_on_black)].startswith(str(int(mnist["test_y"][1])))
    assert "top 3" in lines[str(files[0][0])]
    assert "not an image" in lines[str(bad / "notes.png")]
    assert "blank" in lines[str(bad / "blank.png")]
    assert "too large" in lines[str(bad / "huge.png")]
    assert "folder holds no images" in lines[str(tmp_path / "empty")]
    assert "7 input(s) could not be predicted" in result.stdout
    with (out / "predictions.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 148 and sum(bool(row["error"]) for row in rows) == 7  # the failed inputs too
    seen = sorted((out / "inputs").glob("*.png"))
    assert len(seen) == 141 and Image.open(seen[0]).size == (28, 28)


@pytest.mark.slow  # a subprocess of train.py, eval.py or predict.py
def test_predict_shows_a_test_image_and_writes_a_kaggle_submission(trained_run, tmp_path: Path, mnist):
    pixels = [",".join(map(str, x.flatten().tolist())) for x in mnist["test_x"][:30]]
    (tmp_path / "test.csv").write_text(",".join(f"pixel{i}" for i in range(784)) + "\n" + "\n".join(pixels) + "\n")
    out = tmp_path / "out"
    result = run_script(
        "predict.py",
        f"ckpt_path={trained_run['ckpt']}",
        "test_index=5",
        f"kaggle_csv={tmp_path / 'test.csv'}",
        f"hydra.run.dir={out}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"test image 5: true {int(mnist['test_y'][5])}, predicted" in result.stdout
    assert Image.open(out / "test_5.png").size == (112, 112)
    with (out / "submission.csv").open() as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["ImageId", "Label"] and [r[0] for r in rows[1:]] == [str(i) for i in range(1, 31)]
    hits = sum(int(r[1]) == int(y) for r, y in zip(rows[1:], mnist["test_y"][:30]))
    assert hits >= 27


@pytest.mark.slow  # a subprocess of train.py, eval.py or predict.py
def test_eval_and_predict_say_what_the_checkpoint_was_trained_with(trained_run, tmp_path: Path):
    ckpt = torch.load(trained_run["ckpt"], weights_only=True)  # the run's composed config, as plain data
    assert ckpt["run_config"]["trainer"]["max_epochs"] == 1 and ckpt["run_config"]["seed"] == 12345
    result = run_script("predict.py", f"ckpt_path={trained_run['ckpt']}", "test_index=0", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (
        "Trained with: model=CNN, optimizer=AdamW" in result.stdout and "max_epochs=1, batch_size=256" in result.stdout
    )


@pytest.mark.slow  # a subprocess of train.py, eval.py or predict.py
def test_train_refuses_a_file_that_is_not_a_checkpoint_in_one_line(tmp_path: Path):
    (tmp_path / "notes.ckpt").write_text("hello")  # what torch.load called KeyError: 104
    result = run_script("train.py", f"ckpt_path={tmp_path / 'notes.ckpt'}", "model=logreg", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {tmp_path / 'notes.ckpt'}: cannot be read as a safe (weights-only) checkpoint: "
        "it is not a file torch.save wrote (KeyError)"
    )
    assert not (tmp_path / "outputs").exists()  # refused before it started: no run folder left behind


@pytest.mark.slow  # a trained CNN: train.py as a subprocess
def test_soft_blurry_digits_keep_their_strokes(trained_run, mnist):
    network = Network(load_classifier(trained_run["ckpt"]))
    rng = np.random.default_rng(0)
    pages = [np.asarray(soft_page(digit, 8, rng)) for digit in mnist["test_x"][:100]]  # shrunk to 8 px: the blurriest
    seen = torch.stack([to_mnist(page)[None] for page in pages])  # (N, 1, 28, 28)
    assert (network.probabilities(seen).argmax(-1) == mnist["test_y"][:100]).sum() >= 87  # 83 when a threshold cut them


def predict_in(folder: Path, ckpt: Path, *overrides: str) -> list[dict]:
    """predict.py's task with ``overrides``, its output in ``folder``; the rows of its predictions.csv."""
    out = folder / "out"
    cfg = compose_config(f"ckpt_path={ckpt}", "save_csv=true", f"output_dir={out}", *overrides, config_name="predict")
    try:
        run_task(predict, cfg)
    except SystemExit as stop:
        assert stop.code == 1  # an input failed, and the others were predicted
    with (folder / "out" / "predictions.csv").open() as f:
        return list(csv.DictReader(f))


def test_predict_reads_one_path_given_without_brackets_as_that_file(one_batch_run, tmp_path: Path, monkeypatch, mnist):
    for name in ("three.png", "other.png"):
        Image.fromarray(255 - mnist["test_x"][0].numpy()).save(tmp_path / name)
    monkeypatch.chdir(tmp_path)  # "three.png" read letter by letter has "." in it: this folder
    rows = predict_in(tmp_path, one_batch_run["ckpt"], "inputs=three.png")
    assert [row["input"] for row in rows] == ["three.png"] and rows[0]["class"]


def test_predict_reads_each_file_once_never_outside_its_folder_and_lists_failures(one_batch_run, tmp_path: Path, mnist):
    digits, outside = tmp_path / "digits", tmp_path / "outside"
    (digits / "sub").mkdir(parents=True)
    outside.mkdir()
    for path in (digits / "a.png", digits / "sub" / "b.png", outside / "c.png"):
        Image.fromarray(255 - mnist["test_x"][0].numpy()).save(path)
    (digits / "link.png").symlink_to(outside / "c.png")  # leads out of the folder
    (digits / "linked_folder").symlink_to(outside, target_is_directory=True)
    inputs = f"inputs=[{digits / 'a.png'},{digits},{tmp_path / 'missing.png'}]"
    rows = predict_in(tmp_path, one_batch_run["ckpt"], inputs)
    assert [row["input"] for row in rows] == [
        str(digits / "a.png"),
        str(digits / "sub" / "b.png"),
        str(tmp_path / "missing.png"),
    ]
    assert rows[-1]["error"] == "no such file or folder" and rows[-1]["class"] == ""
    assert rows[0]["error"] == "" and rows[0]["class"]


@pytest.mark.parametrize(
    "script, override, message",
    [
        ("predict", "max_pixels=-5", "max_pixels=-5 is not allowed: input should be greater than 0"),
        ("predict", "test_index=-1", "test_index=-1 is not allowed"),
        ("predict", "backend=tensorrt", "backend=tensorrt is not allowed: input should be 'torch' or 'onnx'"),
        (
            "predict",
            "+max_pixel=5",
            "max_pixel=5 is not allowed: there is no such setting here; the nearest one is max_pixels",
        ),
        ("eval", "+foo=1", "foo=1 is not allowed: there is no such setting here"),
        (
            "eval",
            "data=mnist data.eval_batch_size=0",
            "data.eval_batch_size=0 is not allowed: input should be greater than 0",
        ),
        ("export", "check=maybe", "check=maybe is not allowed: input should be a valid boolean"),
        ("export", "ckpt_path=", "ckpt_path= is not allowed: string should have at least 1 character"),
        ("serve", "host=", "host= is not allowed: string should have at least 1 character"),
        ("serve", "max_images=0", "max_images=0 is not allowed: input should be greater than 0"),
        ("serve", "max_bytes=0", "max_bytes=0 is not allowed: input should be greater than 0"),
        ("serve", "port=99999", "port=99999 is not allowed: input should be less than or equal to 65535"),
        ("serve", "backend=tf", "backend=tf is not allowed: input should be 'torch' or 'onnx'"),
        ("serve", "+worker=2", "worker=2 is not allowed: there is no such setting here; the nearest one is workers"),
    ],
)
def test_every_script_refuses_bad_settings_before_it_reads_the_checkpoint(tmp_path: Path, script, override, message):
    if script == "serve":
        pytest.importorskip("fastapi", reason='serve.py needs the serve extra: pip install -e ".[serve]"')
    task = {"predict": predict, "eval": evaluate, "export": export}.get(script)
    task = task or importlib.import_module("mnist_lab.serving.server").serve
    given = [f"ckpt_path={tmp_path / 'missing.ckpt'}", f"output_dir={tmp_path}", *override.split()]
    cfg = compose_config(*given, *(["inputs=[a.png]"] if script == "predict" else []), config_name=script)
    with pytest.raises(ConfigError, match=message):  # not the missing checkpoint: the settings come first
        run_task(task, cfg)


def test_predict_answers_the_class_a_trained_network_sees(bars_run, tmp_path: Path):
    files = save_pictures(tmp_path / "pictures")
    rows = predict_in(tmp_path, bars_run["ckpt"], f"inputs=[{','.join(path for path, _ in files)}]")
    assert [(row["input"], int(row["label"])) for row in rows] == files
    assert sorted({row["class"] for row in rows}) == ["0", "1", "2"]


def test_eval_of_several_checkpoints_tests_the_mean_of_their_softmax(tmp_path: Path):
    """Three barely trained models (one step each) that disagree: the ensemble is none of them."""
    from mnist_lab.training.run import train

    runs = [
        bars_config(tmp_path / str(seed), "trainer.max_epochs=1", "trainer.limit_train_batches=1", f"seed={seed}")
        for seed in (1, 2, 3)
    ]
    paths = [train(cfg)[1]["checkpoint"] for cfg in runs]
    result = run_task(
        evaluate, compose_config(f"ckpt_path=[{','.join(paths)}]", f"output_dir={tmp_path}", config_name="eval")
    )
    images, labels = pictures(96, 12, seed=2)  # BarsData's test set
    with torch.no_grad():
        mean = torch.stack([load_classifier(path)(images).softmax(1) for path in paths]).mean(0)
    assert result["test_acc"] == pytest.approx(float((mean.argmax(1) == labels).float().mean()))
    assert result["test_acc"] not in result["single_test_acc"]  # else one model's answer would pass for it
