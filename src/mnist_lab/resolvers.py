"""The OmegaConf resolvers the configs use: ${auto_precision:...}, ${run_dirname:...} and friends."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from omegaconf import OmegaConf

from mnist_lab.hardware import auto_precision
from mnist_lab.hydra_job import sweep_name
from mnist_lab.sweeps.naming import run_dirname
from mnist_lab.training.wandb_mode import offline as wandb_offline


def config_subdir(resume: str | None) -> str:
    """Where Hydra saves a run's config: a resumed run keeps the original and adds its own beside it."""
    return f".hydra/resumed_{datetime.now():%Y-%m-%d_%H-%M-%S-%f}" if resume else ".hydra"


def threads_per_job(jobs: int) -> int:
    """An equal share of the cores for each of ``jobs`` parallel runs."""
    return max(1, (os.cpu_count() or 1) // int(jobs))


def first_set(*values: object) -> object:
    """The first truthy value, else the last one."""
    return next((v for v in values if v), values[-1])


def register_resolvers() -> None:
    for name, resolver in (
        ("auto_precision", auto_precision),
        ("or", first_set),
        ("config_subdir", config_subdir),
        ("run_dirname", run_dirname),
        ("threads_per_job", threads_per_job),
        ("basename", lambda path: Path(path).name),
        ("sweep_name", sweep_name),
        ("wandb_offline", wandb_offline),
    ):
        OmegaConf.register_new_resolver(name, resolver, replace=True)
