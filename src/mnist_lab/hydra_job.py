"""What Hydra knows about the job that is running, and how a job shows a user's error."""

from __future__ import annotations

import functools
from typing import Any, Callable

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from mnist_lab.errors import UserError


def in_sweep() -> bool:
    """True inside a Hydra multirun job."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def parallel_job() -> bool:
    """True in a job of launcher=local_parallel (joblib), which runs several jobs side by side on this machine."""
    return in_sweep() and str(HydraConfig.get().launcher.get("_target_", "")).endswith("JoblibLauncher")


def job_overrides() -> list[str]:
    """The command-line (or sweeper) overrides of this job; none outside Hydra."""
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def friendly_errors(main: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """A single run stops on a known problem with one line, not a traceback; sweeps record it instead."""

    @functools.wraps(main)
    def wrapper(cfg: DictConfig) -> Any:
        try:
            return main(cfg)
        except (UserError, FloatingPointError) as err:
            if in_sweep():
                raise
            raise SystemExit(f"error: {err}") from None

    return wrapper
