from __future__ import annotations

import gzip
from pathlib import Path
from typing import Callable

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from mnist_lab.config import register_resolvers
from mnist_lab.data import SHIPPED_DIR

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

register_resolvers()


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """Compose conf/train.yaml with overrides, writing into tmp_path and on the CPU."""

    def _make(*overrides: str) -> DictConfig:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return compose("train", overrides=[f"output_dir={tmp_path}", "trainer.accelerator=cpu", *overrides])

    return _make


@pytest.fixture
def mnist_copy(tmp_path: Path) -> Path:
    """An uncompressed copy of the shipped MNIST that a test may damage."""
    folder = tmp_path / "mnist"
    folder.mkdir()
    for gz in SHIPPED_DIR.glob("*.gz"):
        (folder / gz.stem).write_bytes(gzip.decompress(gz.read_bytes()))
    return folder
