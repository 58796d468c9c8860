"""logger=wandb: offline without a login, its run's files in the run folder, the same results as TensorBoard's."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

from mnist_lab.command_line import require_extras
from support import run_script

pytest.importorskip("wandb", reason='logger=wandb needs the wandb extra: pip install -e ".[wandb]"')

from support.wandb_files import recorded  # noqa: E402

FAST = [
    "model=logreg",
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=20",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "callbacks.weight_histograms.every_n_epochs=0",
]


@pytest.mark.slow  # a subprocess of train.py, eval.py or predict.py
def test_a_sweep_logs_to_wandb_offline_and_to_tensorboard_beside_it(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(HOME=str(tmp_path), NETRC=str(tmp_path / "no.netrc"))  # no login anywhere
    sweep_dir = tmp_path / "sweep"
    args = ["-m", *FAST, "logger=[tensorboard,wandb]", "model.optimizer.lr=0.5", f"hydra.sweep.dir={sweep_dir}"]
    result = run_script("train.py", *args, cwd=tmp_path, env=env, stdin=subprocess_devnull(), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    [run_dir] = [p.parent for p in sweep_dir.glob("*/result.json")]
    assert f"upload it with: wandb sync {run_dir}/wandb/offline-run-" in result.stdout + result.stderr
    assert list(run_dir.glob("events.out.tfevents.*"))  # TensorBoard too

    run, done = recorded(run_dir), json.loads((run_dir / "result.json").read_text())
    assert run["name"] == run_dir.name and run["group"] == "sweep" and run["project"] == "mnist-lab"
    assert run["config"]["lr"] == 0.5 and run["config"]["model"] == "logreg"  # as written: model=logreg
    assert run["summary"]["test_acc"] == pytest.approx(done["test_acc"])
    assert run["summary"]["val_acc_best"] == pytest.approx(done["val_acc_best"])
    assert len([row for row in run["history"] if "val_acc" in row]) == 2  # one per epoch


def subprocess_devnull() -> int:
    import subprocess

    return subprocess.DEVNULL  # no stdin: a login prompt would fail, not wait


def test_logger_wandb_without_the_extra_names_its_install_line(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    monkeypatch.delitem(sys.modules, "wandb")  # as if never installed (this module imported it)
    with pytest.raises(SystemExit, match=r'logger=wandb needs the "wandb" extra.*pip install -e "\.\[wandb\]"'):
        require_extras("train", ["logger=wandb"])
    with pytest.raises(SystemExit, match=r'logger=\[tensorboard,wandb\] needs the "wandb" extra'):
        require_extras("train", ["logger=[tensorboard,wandb]"])
