from __future__ import annotations

import csv
from pathlib import Path

from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from mnist_lab.cli import train

TINY = ["debug=tiny", "trainer.max_epochs=2", "trainer.limit_train_batches=5", "logger=both", "logger.tensorboard.log_graph=true"]


def test_a_run_fills_tensorboard_and_its_folder(make_cfg, tmp_path: Path):
    cfg = make_cfg(*TINY)
    best = train(cfg)["metrics"]["val_acc_best"]
    events = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0, "images": 0, "histograms": 0}).Reload()
    tags = events.Tags()

    assert {
        "train_loss_step", "train_loss_epoch", "train_acc_step", "train_acc_epoch", "val_loss", "val_acc",
        "val_acc_best", "test_loss", "test_acc", "lr-AdamW", "epoch",
    } <= set(tags["scalars"])
    assert events.Scalars("val_acc_best")[-1].value == best
    assert 0 < events.Scalars("test_acc")[-1].value <= 1
    assert len(events.Scalars("train_acc_epoch")) == 2 and "hp_metric" not in tags["scalars"]

    plugin = events.PluginTagToContent("hparams")
    experiment = HParamsPluginData.FromString(plugin["_hparams_/experiment"]).experiment
    assert {m.name.tag for m in experiment.metric_infos} == {"val_acc_best", "test_acc", "test_loss"}
    session = HParamsPluginData.FromString(plugin["_hparams_/session_start_info"]).session_start_info
    assert session.hparams["model"].string_value == "CNN" and session.hparams["lr"].number_value == cfg.model.optimizer.lr
    assert {"dropout", "max_epochs", "batch_size", "optimizer", "scheduler", "seed", "precision"} <= set(session.hparams)

    assert {"0_Conv2d/weight", "0_Conv2d/bias", "7_Linear/weight", "10_Linear/bias"} <= set(tags["histograms"])
    assert len(events.Histograms("0_Conv2d/weight")) == 2
    assert {"test/confusion_matrix", "test/misclassified", "test/predictions"} <= set(tags["images"])
    assert tags["graph"]

    for name in ("confusion_matrix", "misclassified", "predictions", "learning_curves"):
        with Image.open(tmp_path / f"{name}.png") as img:
            assert img.width >= 300 and img.height >= 100
    with (tmp_path / "epochs.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert all(0 <= float(r[k]) <= 1 for r in rows for k in ("train_acc", "val_acc"))
    assert all(float(r[k]) > 0 for r in rows for k in ("train_loss", "val_loss"))
    assert (tmp_path / "csv" / "metrics.csv").is_file()  # Lightning's CSVLogger beside TensorBoard
