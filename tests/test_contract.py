"""Lightning's data contract: a user's own DataModule (tests/support/user_data.py, nothing of mnist_lab in it)
trains, its facts travel in the checkpoint, a DataModule that breaks the contract is refused in one line, and
runs of any length train with every scheduler."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mnist_lab.errors import DataError
from mnist_lab.models.classifier import load_classifier
from mnist_lab.training.run import train
from support import CONF, bars_config

SCHEDULERS = sorted(p.stem for p in (CONF / "model" / "scheduler").glob("*.yaml"))


def user_cfg(make_cfg, *overrides: str, model: str = "logreg", **data: object):
    return bars_config(make_cfg().output_dir, *overrides, model=model, **data)


def test_a_users_datamodule_trains_and_its_facts_go_into_the_checkpoint(make_cfg):
    metrics, objects = train(user_cfg(make_cfg, "trainer.max_epochs=4", "model.optimizer.lr=0.1", model="mlp", side=14))
    assert metrics["test_acc"] >= 0.9  # three classes: chance is a third
    model = load_classifier(objects["checkpoint"])
    assert (model.hparams.image_size, model.hparams.channels, len(model.classes)) == (14, 1, 3)
    assert model.net[1].in_features == 14 * 14 and model.hparams.reading == "resized"
    assert 0.1 < model.hparams.mean < 0.6 and model.hparams.std > 0.1  # the pixels', not MNIST's 0.1307


def test_raw_uint8_images_without_a_channel_are_read_as_the_pictures_predict_gives(make_cfg):
    """uint8 (B, H, W) batches, as a file holds them: the model reads them as floats in [0, 1] (B, 1, H, W), the
    form predict.py and serve.py give it, for training, testing and the test figures alike."""
    cfg = user_cfg(make_cfg, "trainer.max_epochs=4", model="cnn", raw=True)
    metrics, objects = train(cfg)
    assert metrics["test_acc"] >= 0.9
    model = load_classifier(objects["checkpoint"])
    raw = next(iter(objects["datamodule"].test_dataloader()))[0]
    assert raw.dtype == torch.uint8 and raw.dim() == 3
    assert torch.allclose(model(raw), model(raw[:, None].float() / 255))
    drawn = np.asarray(Image.open(Path(cfg.output_dir) / "predictions.png").convert("L"))
    assert drawn.min() < 60 and np.median(drawn) > 150  # dark bars on light tiles: 0-255 read as 0-1 is all ink


def test_a_datamodule_that_makes_its_test_set_in_setup_test_is_tested(make_cfg):
    cfg = user_cfg(make_cfg, "trainer.max_epochs=4", "model.optimizer.lr=0.1", model="mlp")
    cfg.data = {"_target_": "support.user_data.StagedBars"}
    assert train(cfg)[0]["test_acc"] >= 0.9  # its test set did not exist until the Trainer set it up to test


@pytest.mark.parametrize("mean, std", [((0.3,), (0.4,)), ((0.3, 0.2, 0.1), (0.4, 0.5, 0.6))])
def test_a_normalize_among_the_datamodules_transforms_becomes_the_models(make_cfg, mean, std):
    """Lightning's docs normalise MNIST in the DataModule (transforms.Normalize; colour pictures: one mean a
    channel): the model takes it over, so it reads new pictures in [0, 1] (predict.py's, serve.py's) as it read
    its training images."""
    from mnist_lab.data.contract import tensors
    from mnist_lab.data.datamodule import data_of_run
    from support.user_data import pictures

    cfg = user_cfg(make_cfg, "trainer.max_epochs=4", "model.optimizer.lr=0.1", model="mlp")
    cfg.data = {"_target_": "support.user_data.NormalizedBars", "mean": list(mean), "std": list(std)}
    assert train(cfg)[0]["test_acc"] >= 0.9
    model = load_classifier(Path(cfg.output_dir) / "checkpoints" / "last.ckpt")
    one = len(mean) == 1
    assert (model.hparams.mean, model.hparams.std) == ((mean[0], std[0]) if one else (list(mean), list(std)))
    images, labels = pictures(60, 12, seed=5)  # new pictures, in [0, 1]
    assert (model(images.expand(-1, len(mean), -1, -1)).argmax(1) == labels).float().mean() >= 0.9
    test_images = tensors(data_of_run(model.run_config), "test")[0]  # eval.py's data: as the model reads it
    assert test_images.min() >= 0 and test_images.max() <= 1


def test_validation_images_of_another_size_are_refused_in_one_line(make_cfg):
    cfg = user_cfg(make_cfg, "trainer.max_epochs=1", model="cnn")
    cfg.data = {"_target_": "support.user_data.StagedBars", "val_side": 16}
    with pytest.raises(DataError, match=r"the val images are 1x16x16 .*, the train images 1x12x12: .* make them one"):
        train(cfg)


def test_without_validation_or_test_data_the_run_trains_keeps_its_last_epoch_and_says_so(make_cfg, caplog):
    caplog.set_level(logging.INFO, logger="mnist_lab")
    metrics, objects = train(user_cfg(make_cfg, "trainer.max_epochs=1", validate=False, test=False))
    assert "val_acc" not in metrics and "test_acc" not in metrics
    assert objects["checkpoint"].endswith("epoch00.ckpt")
    assert "Not tested: BarsData has no test data" in caplog.text


def test_a_datamodule_without_a_batch_size_trains_with_a_model_that_sets_one(make_cfg, caplog):
    """conf/model/mlp.yaml sets data.batch_size=512: a DataModule that takes none batches its own way."""
    caplog.set_level(logging.INFO, logger="mnist_lab")
    cfg = user_cfg(make_cfg, "trainer.max_epochs=1", model="mlp")
    cfg.data = {"_target_": "support.user_data.OwnBatches", "batch_size": make_cfg("model=mlp").data.batch_size}
    assert train(cfg)[1]["trainer"].num_training_batches == 96 // 16
    assert "support.user_data.OwnBatches takes no batch_size: data.batch_size=512 is left out" in caplog.text


@pytest.mark.parametrize(
    "data, message",
    [
        ({"labels": False}, r"the train dataloader yields 1 items, not \(images, labels\)"),
        ({"label_offset": 3}, "the train labels go from 3 to 5, but the data has 3 classes"),
        ({"mixed_sizes": True}, "the train images have mixed sizes"),
        ({"num_classes": None}, "BarsData says nothing of its classes: give it a num_classes attribute"),
        ({"blank": True}, r"every pixel of the first training batch is the same \(std 0\)"),
        ({"normalized": True}, r"the train images hold values from -1.00 to 2.33, not 0 to 1: .*transforms.Normalize"),
    ],
)
def test_a_datamodule_that_breaks_the_contract_is_refused_in_one_line(make_cfg, data, message):
    with pytest.raises(DataError, match=message) as refused:
        train(user_cfg(make_cfg, "trainer.max_epochs=1", **data))
    assert "\n" not in str(refused.value)


# One step, and more steps than epochs, with each; OneCycle's warm-up of exactly one step (4 x 0.25: torch divided
# by zero).
@pytest.mark.parametrize(
    "scheduler, epochs, batches",
    [(s, e, b) for s in SCHEDULERS for e, b in [(1, 1), (2, 3)]] + [("onecycle", 4, 1)],
)
def test_a_run_of_any_length_trains_with_every_scheduler(make_cfg, scheduler, epochs, batches):
    cfg = user_cfg(
        make_cfg,
        f"model/scheduler={scheduler}",
        f"trainer.max_epochs={epochs}",
        f"trainer.limit_train_batches={batches}",
        "test=false",
    )
    trainer = train(cfg)[1]["trainer"]
    assert trainer.global_step == epochs * batches
