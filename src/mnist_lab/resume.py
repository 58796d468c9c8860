"""Continuing a run in its own folder: its config and the checkpoint it continues from."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from omegaconf import DictConfig, OmegaConf

from mnist_lab.errors import ConfigError


def load_run_config(run_dir: str | Path) -> DictConfig:
    """The config an earlier run was started with (its .hydra/config.yaml), to continue it."""
    path = Path(run_dir) / ".hydra" / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"resume={run_dir} is not a run folder: it has no .hydra/config.yaml (look in outputs/runs/).")
    cfg = OmegaConf.load(path)
    cfg.resume = str(run_dir)
    return cfg


def resume_checkpoint(run_dir: Path) -> Optional[Path]:
    """Where an unfinished run in ``run_dir`` continues from: the last finished epoch, else the Ctrl-C save."""
    for name in ("last.ckpt", "interrupted.ckpt"):
        path = run_dir / "checkpoints" / name
        if path.is_file():
            return path
    return None
