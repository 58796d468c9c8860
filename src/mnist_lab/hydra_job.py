"""What Hydra knows about the job that is running."""

from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode


def in_sweep() -> bool:
    """True inside a Hydra multirun job."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def sweep_name() -> str | None:
    """The sweep folder's name inside a multirun job; None outside one."""
    return Path(HydraConfig.get().sweep.dir).name if in_sweep() else None


def parallel_job() -> bool:
    """True in a job of launcher=local_parallel (joblib), which runs several jobs side by side on this machine."""
    return in_sweep() and str(HydraConfig.get().launcher.get("_target_", "")).endswith("JoblibLauncher")


def job_overrides() -> list[str]:
    """The command-line (or sweeper) overrides of this job; none outside Hydra."""
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
