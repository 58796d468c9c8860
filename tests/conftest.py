from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import pytest
from filelock import FileLock
from omegaconf import DictConfig

from support import bars_config, compose_config, run_script

if TYPE_CHECKING:  # imported where tests run (8 s of torch and Lightning), not in pytest -n's controller
    import torch

    from mnist_lab.inference.backends import Network


# pytest -n N: N workers share the cores, and the default (every core in each process, and in each script a test
# starts) makes them wait on each other. Set before the tests import numpy, OpenCV and torch, which read it then.
if workers := os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // int(workers)))


@pytest.fixture(scope="session", autouse=True)
def project() -> None:
    """The OmegaConf resolvers, and torch's threads (OMP_NUM_THREADS above, where it is set)."""
    import torch

    from mnist_lab.resolvers import register_resolvers

    register_resolvers()
    if "OMP_NUM_THREADS" in os.environ:
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """Compose conf/train.yaml with overrides, writing into tmp_path and on the CPU."""

    def _make(*overrides: str) -> DictConfig:
        return compose_config(f"output_dir={tmp_path}", "trainer.accelerator=cpu", *overrides)

    return _make


@pytest.fixture
def mnist_copy(tmp_path: Path) -> Path:
    """An uncompressed copy of the shipped MNIST that a test may damage, in torchvision's layout: its root."""
    from mnist_lab.data.mnist import SHIPPED_DIR

    folder = tmp_path / "mnist"
    (folder / "MNIST" / "raw").mkdir(parents=True)
    for gz in SHIPPED_DIR.glob("*.gz"):
        (folder / "MNIST" / "raw" / gz.stem).write_bytes(gzip.decompress(gz.read_bytes()))
    return folder


@pytest.fixture(scope="session")
def mnist() -> dict[str, torch.Tensor]:
    from mnist_lab.data.mnist import load_shipped

    return load_shipped()


def _train_briefly(run_dir: Path) -> None:
    result = run_script(
        "train.py",
        "trainer.accelerator=cpu",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=120",
        "trainer.limit_val_batches=1",
        "callbacks.progress_bar.refresh_rate=0",
        f"torch_threads={os.cpu_count()}",  # the other workers wait for it, or soon will
        f"hydra.run.dir={run_dir}",
        cwd=run_dir.parent,
        env={**os.environ, "OMP_NUM_THREADS": str(os.cpu_count())},
    )
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, worker_id) -> dict:
    """A CNN trained briefly through train.py (~98 % accurate): its run folder, checkpoint and test accuracy.

    Trained once per session: pytest -n N's workers share it through a lock in their common folder.
    """
    shared = tmp_path_factory.getbasetemp() if worker_id == "master" else tmp_path_factory.getbasetemp().parent
    run_dir = shared / "trained_run"
    with FileLock(shared / "trained_run.lock"):
        if not (run_dir / "result.json").is_file():
            _train_briefly(run_dir)
    result = json.loads((run_dir / "result.json").read_text())
    return {"dir": run_dir, "ckpt": next((run_dir / "checkpoints").glob("epoch*.ckpt")), "test_acc": result["test_acc"]}


@pytest.fixture(scope="session")
def one_batch_run(tmp_path_factory) -> dict:
    """A CNN trained on one batch, in this process: a real run folder and checkpoint where any checkpoint serves."""
    from mnist_lab.training.run import run

    run_dir = tmp_path_factory.mktemp("one_batch") / "run"
    limits = ("trainer.max_epochs=1", *(f"trainer.limit_{stage}_batches=1" for stage in ("train", "val", "test")))
    run(compose_config(f"output_dir={run_dir}", "trainer.accelerator=cpu", "logger=[]", *limits))
    result = json.loads((run_dir / "result.json").read_text())
    return {"dir": run_dir, "ckpt": next((run_dir / "checkpoints").glob("epoch*.ckpt")), "test_acc": result["test_acc"]}


@pytest.fixture(scope="session")
def network(one_batch_run) -> Network:
    """one_batch_run's network, as predict.py and serve.py load it: where any network serves."""
    from mnist_lab.inference.backends import load_network

    return load_network(one_batch_run["ckpt"])


@pytest.fixture(scope="session")
def bars_run(tmp_path_factory) -> dict:
    """A logistic regression trained in this process on 28x28 bars to ~100 %: where a test needs a network that
    answers right."""
    from mnist_lab.training.run import train

    cfg = bars_config(tmp_path_factory.mktemp("bars") / "run", "trainer.max_epochs=4", side=28, count=192)
    metrics, objects = train(cfg)
    return {"ckpt": objects["checkpoint"], "test_acc": metrics["test_acc"], "dir": Path(cfg.output_dir)}
