"""What one short run leaves for TensorBoard and in its folder, one output per test."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from mnist_lab.training.hparams import columns
from mnist_lab.training.run import train
from support import compose_config
from support.probes import InterruptAt

TINY = [
    "debug=tiny",
    "data.batch_size=32",
    "data.eval_batch_size=64",
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=5",
    "logger=both",
    "logger.tensorboard.log_graph=true",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    """One 2-epoch CNN run with both loggers: its folder, config, metrics and TensorBoard events."""
    folder = tmp_path_factory.mktemp("dashboard")
    cfg = compose_config(f"output_dir={folder}", "trainer.accelerator=cpu", *TINY)
    metrics, _ = train(cfg)
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "histograms": 0}).Reload()
    return {"dir": folder, "cfg": cfg, "metrics": metrics, "events": events, "tags": events.Tags()}


def test_scalars_hold_every_curve_and_the_final_results(run):
    events, tags = run["events"], run["tags"]
    assert {
        "train_loss_step",
        "train_loss_epoch",
        "train_acc_step",
        "train_acc_epoch",
        "val_loss",
        "val_acc",
        "val_acc_best",
        "test_loss",
        "test_acc",
        "lr-AdamW",
        "epoch",
    } <= set(tags["scalars"])
    assert events.Scalars("val_acc_best")[-1].value == run["metrics"]["val_acc_best"]
    assert events.Scalars("test_acc")[-1].value == pytest.approx(run["metrics"]["test_acc"])
    assert len(events.Scalars("train_acc_epoch")) == 2 and "hp_metric" not in tags["scalars"]


def test_hparams_tab_lists_the_settings_beside_the_results(run):
    plugin = run["events"].PluginTagToContent("hparams")
    experiment = HParamsPluginData.FromString(plugin["_hparams_/experiment"]).experiment
    # pruned_at_epoch: what a run of sweep=optuna that was pruned logs instead of test results.
    assert {m.name.tag for m in experiment.metric_infos} == {"val_acc_best", "test_acc", "test_loss", "pruned_at_epoch"}
    session = HParamsPluginData.FromString(plugin["_hparams_/session_start_info"]).session_start_info
    assert (
        session.hparams["model"].string_value == "CNN"
        and session.hparams["lr"].number_value == run["cfg"].model.optimizer.lr
    )
    assert {"dropout", "max_epochs", "batch_size", "optimizer", "scheduler", "seed", "precision"} <= set(
        session.hparams
    )
    # As the config says them, not 256.00 and 0.0000.
    assert session.hparams["batch_size"].string_value == str(run["cfg"].data.batch_size)
    assert session.hparams["augment"].string_value == str(bool(run["cfg"].data.augment)).lower()


def test_histograms_of_every_layer_each_epoch(run):
    assert {"0_Conv2d/weight", "0_Conv2d/bias", "7_Linear/weight", "10_Linear/bias"} <= set(run["tags"]["histograms"])
    assert len(run["events"].Histograms("0_Conv2d/weight")) == 2


def test_the_model_graph_holds_the_networks_layers(run):
    layers = {node.name.split("/")[2].split("[")[0] for node in run["events"].Graph().node if "CNN[net]/" in node.name}
    assert {"Conv2d", "MaxPool2d", "Linear"} <= layers  # the CNN's own, traced through ImageClassifier


@pytest.mark.parametrize("name", ["confusion_matrix", "misclassified", "predictions"])
def test_tensorboard_shows_the_test_figures_the_run_folder_holds(run, name):
    [shown] = run["events"].Images(f"test/{name}")
    with (
        Image.open(io.BytesIO(shown.encoded_image_string)) as in_tensorboard,
        Image.open(run["dir"] / f"{name}.png") as saved,
    ):
        assert np.array_equal(np.asarray(in_tensorboard.convert("RGB")), np.asarray(saved.convert("RGB")))


def test_the_learning_curves_are_drawn_in_the_run_folder(run):
    with Image.open(run["dir"] / "learning_curves.png") as picture:
        colours = picture.convert("RGB").getcolors(maxcolors=1 << 16)
    assert len(colours) > 50  # lines, ticks and labels (what they show: test_figures)


def test_epochs_csv_has_a_row_per_epoch(run):
    with (run["dir"] / "epochs.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert float(rows[-1]["val_acc"]) == pytest.approx(run["metrics"]["val_acc"])
    assert all(float(r[k]) > 0 for r in rows for k in ("train_loss", "val_loss"))


def test_csv_logger_writes_beside_tensorboard(run):
    with (Path(run["dir"]) / "csv" / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert any(r.get("test_acc") for r in rows) and any(r.get("val_acc") for r in rows)


def hparams_of(folder: Path) -> dict:
    """The HPARAMS row of the run logged under ``folder``, as TensorBoard reads it."""
    plugin = EventAccumulator(str(folder)).Reload().PluginTagToContent("hparams")
    session = HParamsPluginData.FromString(plugin["_hparams_/session_start_info"]).session_start_info
    return {key: value.string_value or value.number_value for key, value in session.hparams.items()}


@pytest.mark.parametrize("hidden, momentum", [(16, 0.5), (64, 0.9)])
def test_hparams_show_every_setting_a_run_changed_as_written(tmp_path, hidden, momentum):
    """The README's grid: model=mlp model/optimizer=sgd model.net.hidden=16,64 model.optimizer.momentum=0.5,0.9."""
    overrides = [
        "model=mlp",
        "model/optimizer=sgd",
        f"model.net.hidden={hidden}",
        f"model.optimizer.momentum={momentum}",
    ]
    cfg = compose_config(f"output_dir={tmp_path}", "trainer.accelerator=cpu", "debug=tiny", "test=false", *overrides)
    train(cfg, overrides=[*overrides, "debug=tiny"])
    shown = hparams_of(tmp_path)
    assert (shown["model"], shown["optimizer"], shown["hidden"], shown["momentum"]) == (
        "mlp",
        "sgd",
        str(hidden),
        momentum,
    )
    assert shown["activation"] == "sigmoid" and shown["lr"] == cfg.model.optimizer.lr  # the network's own, the common
    assert "debug" not in shown  # what does not change what a run learns is not a setting


def test_hparams_columns_are_short_unless_two_keys_share_a_name():
    params = {"model.net.scale": 2, "data.augment.scale": 0.1, "model.net.hidden": 64, "model/optimizer": "sgd"}
    assert columns(params) == {"model.net.scale": 2, "data.augment.scale": 0.1, "hidden": 64, "optimizer": "sgd"}


def test_a_resumed_run_keeps_the_columns_of_the_settings_it_was_started_with(tmp_path, monkeypatch):
    """TensorBoard shows a folder's first row; the resumed session logs the same one (MLflow refuses a param that
    changes value), though its own command line says only resume=<run>."""
    from mnist_lab.training import run as training

    run_dir, stopped = tmp_path / "run", tmp_path / "stopped"
    overrides = [
        "model=mlp",
        "model/optimizer=sgd",
        "model.optimizer.momentum=0.5",
        "debug=tiny",
        "trainer.max_epochs=2",
    ]
    probe = [f"+callbacks.stop._target_={InterruptAt.__module__}.InterruptAt", f"+callbacks.stop.path={stopped}"]
    cfg = compose_config(f"output_dir={run_dir}", "trainer.accelerator=cpu", "test=false", *overrides, *probe)
    (run_dir / ".hydra").mkdir(parents=True)
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")  # what Hydra keeps of a run
    monkeypatch.setattr(training, "job_overrides", lambda: overrides)  # and gives train.py
    with pytest.raises(SystemExit):  # Ctrl-C as its second epoch starts
        training.run(cfg)
    resume = [f"resume={run_dir}"]
    monkeypatch.setattr(training, "job_overrides", lambda: resume)  # python train.py resume=<run>
    training.run(compose_config(*resume))
    sessions = sorted(run_dir.glob("events.out.tfevents.*"), key=lambda path: path.stat().st_mtime_ns)
    assert len(sessions) == 2 and hparams_of(sessions[0])["momentum"] == 0.5
    shown = hparams_of(sessions[1])  # the resumed session's row
    assert json.loads((run_dir / "result.json").read_text())["status"] == "ok"
    assert (shown["model"], shown["optimizer"], shown["momentum"]) == (
        "mlp",
        "sgd",
        0.5,
    )  # momentum: a column of its own
