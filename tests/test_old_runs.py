"""Runs and checkpoints written before the package was grouped into folders still load and resume.

The fixture is a logreg run that the code of commit 17948f8 wrote and that was killed (SIGKILL)
after its first epoch: its .hydra/config.yaml and checkpoints name the old class paths.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from mnist_lab.migration import MOVED, migrate
from mnist_lab.models.classifier import load_classifier
from mnist_lab.models.networks import LogReg
from support import ROOT, run_script

OLD_RUN = ROOT / "tests" / "fixtures" / "old_logreg_run"


def test_the_fixture_names_the_old_class_paths():
    ckpt = torch.load(OLD_RUN / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["hyper_parameters"]["net"]["_target_"] == "mnist_lab.networks.LogReg"
    assert "mnist_lab.callbacks.ProgressBar" in (OLD_RUN / ".hydra" / "config.yaml").read_text()


def test_every_moved_path_names_an_object_that_exists():
    from hydra.utils import get_object

    renamed = {"MNISTDataModule": "ImageDataModule", "DigitClassifier": "ImageClassifier"}
    for old, new in MOVED.items():
        name = old.rsplit(".", 1)[-1]
        assert get_object(new).__name__ == renamed.get(name, name)


def test_an_old_checkpoint_loads_and_predicts():
    model = load_classifier(OLD_RUN / "checkpoints" / "last.ckpt")
    assert isinstance(model.net, LogReg) and model.run_config is None  # saved before checkpoints carried it
    from mnist_lab.data.datamodule import ImageDataModule

    dm = ImageDataModule(val_size=0)
    dm.setup()
    x, y = dm.on_after_batch_transfer((dm.test_set.images[:500], dm.test_set.labels[:500]), 0)
    with torch.no_grad():
        assert (model(x).argmax(1) == y).float().mean() > 0.8


def test_moved_targets_are_mapped_at_any_depth_without_touching_the_original():
    old = OmegaConf.load(OLD_RUN / ".hydra" / "config.yaml")
    new = migrate(old)
    assert new.model.net._target_ == "mnist_lab.models.networks.LogReg"
    assert new.trainer.plugins[0]._target_ == "mnist_lab.training.checkpoint_io.AtomicCheckpointIO"
    assert new.callbacks.epoch_history._target_ == "mnist_lab.training.callbacks.EpochHistory"
    assert old.model.net._target_ == "mnist_lab.networks.LogReg"
    assert migrate({"net": {"_target_": "mnist_lab.networks.CNN"}})["net"]["_target_"].startswith("mnist_lab.models.")


@pytest.mark.slow  # a subprocess of train.py, eval.py or predict.py
def test_an_old_killed_run_resumes_in_its_folder_and_keeps_its_record(tmp_path: Path):
    run_dir = tmp_path / "old_logreg_run"
    shutil.copytree(OLD_RUN, run_dir)
    result = run_script("train.py", f"resume={run_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Continuing from" in result.stdout and "Test accuracy:" in result.stdout
    record = json.loads((run_dir / "result.json").read_text())
    assert record["status"] == "ok" and record["epochs"] == 2 and record["test_acc"] > 0.8
    assert record["overrides"] == json.loads((OLD_RUN / "result.json").read_text())["overrides"]  # not ["resume=..."]
    assert len(record["resumed"]) == 1
    assert "Test accuracy:" in (run_dir / "train.log").read_text()  # the log file gets what the terminal shows
    ckpt = torch.load(record["checkpoint"], weights_only=True)
    old = OmegaConf.load(OLD_RUN / ".hydra" / "config.yaml")
    assert ckpt["run_config"]["seed"] == old.seed and ckpt["run_config"]["test"] == old.test  # its own
    assert ckpt["run_config"]["model"]["net"]["_target_"] == "mnist_lab.models.networks.LogReg"  # migrated
