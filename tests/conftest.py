from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Callable

import pytest
import torch
from omegaconf import DictConfig

from mnist_lab.data.mnist import SHIPPED_DIR, load_mnist
from mnist_lab.resolvers import register_resolvers
from support import compose_config, run_script

register_resolvers()

# pytest -n N: N workers share the cores, and torch's default (every core in each process, and in
# each script a test starts) makes them wait on each other.
if workers := os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // int(workers)))
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """Compose conf/train.yaml with overrides, writing into tmp_path and on the CPU."""

    def _make(*overrides: str) -> DictConfig:
        return compose_config(f"output_dir={tmp_path}", "trainer.accelerator=cpu", *overrides)

    return _make


@pytest.fixture
def mnist_copy(tmp_path: Path) -> Path:
    """An uncompressed copy of the shipped MNIST that a test may damage."""
    folder = tmp_path / "mnist"
    folder.mkdir()
    for gz in SHIPPED_DIR.glob("*.gz"):
        (folder / gz.stem).write_bytes(gzip.decompress(gz.read_bytes()))
    return folder


@pytest.fixture(scope="session")
def mnist() -> dict[str, torch.Tensor]:
    return load_mnist(SHIPPED_DIR, download=False)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> dict:
    """A CNN trained briefly through train.py (~97 % accurate): its run folder, checkpoint and test accuracy."""
    import re

    run_dir = tmp_path_factory.mktemp("trained") / "run"
    result = run_script(
        "train.py",
        "trainer.accelerator=cpu",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=120",
        "trainer.limit_val_batches=1",
        "callbacks.progress_bar.refresh_rate=0",
        f"hydra.run.dir={run_dir}",
        cwd=run_dir.parent,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    accuracy = float(re.search(r"Test accuracy: ([\d.]+) %", result.stdout).group(1)) / 100
    return {"dir": run_dir, "ckpt": next((run_dir / "checkpoints").glob("epoch*.ckpt")), "test_acc": accuracy}
