"""Checks made once before anything is launched: the extras a choice needs are installed, and every swept key exists."""

from __future__ import annotations

import importlib.util
from typing import Any, Iterable

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

# (config group, option) -> (the module it needs, the extra of pyproject.toml that installs it)
EXTRAS = {
    ("sweep", "optuna"): ("optuna_integration", "optuna"),
    ("hydra/sweeper", "optuna"): ("optuna_integration", "optuna"),
    ("launcher", "local_parallel"): ("hydra_plugins.hydra_joblib_launcher", "launchers"),
    ("launcher", "slurm"): ("hydra_plugins.hydra_submitit_launcher", "launchers"),
    ("launcher", "submitit_local"): ("hydra_plugins.hydra_submitit_launcher", "launchers"),
    ("hydra/launcher", "joblib"): ("hydra_plugins.hydra_joblib_launcher", "launchers"),
    ("hydra/launcher", "submitit_slurm"): ("hydra_plugins.hydra_submitit_launcher", "launchers"),
    ("hydra/launcher", "submitit_local"): ("hydra_plugins.hydra_submitit_launcher", "launchers"),
    ("logger", "mlflow"): ("mlflow", "mlflow"),
    ("backend", "onnx"): ("onnxruntime", "onnx"),  # predict.py and serve.py
}


def require_extras(args: Iterable[str]) -> None:
    """Stop with the install command when a command-line choice needs an extra that is not installed.

    Hydra would only say that it cannot find ``hydra/sweeper/optuna`` in its search path, and
    Lightning would name MLflow's package, not the project's extra.
    """
    for arg in args:
        group, _, option = arg.partition("=")
        module, extra = EXTRAS.get((group.lstrip("+"), option), (None, None))
        if module:
            require_extra(module, extra, arg)


def require_extra(module: str, extra: str, needed_by: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise SystemExit(
            f'error: {needed_by} needs the "{extra}" extra, which is not installed: pip install -e ".[{extra}]"'
        )


def _swept_keys(config: DictConfig) -> list[str]:
    from_command_line = [o.partition("=")[0] for o in config.hydra.overrides.task if "=" in o]
    return from_command_line + list(config.hydra.sweeper.get("params") or {})


def missing_keys(config: DictConfig) -> list[str]:
    """Keys a sweep sets that the composed config does not have (and that are no config group)."""
    groups = set(config.hydra.runtime.choices)
    missing = []
    for key in _swept_keys(config):
        if key.startswith(("+", "~", "hydra.")) or "/" in key or key in groups:
            continue
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(config, parent) if parent else config
        if not isinstance(node, DictConfig) or leaf not in node:
            missing.append(key)
    return missing


class SweepKeysExist(Callback):
    """Hydra callback: refuse a sweep over a key this config lacks (e.g. model.net.dropout with model=logreg)
    before any run starts, instead of failing at the first run's composition."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        missing = missing_keys(config)
        if missing:
            model = config.hydra.runtime.choices.get("model")
            raise SystemExit(
                f"error: the sweep sets {', '.join(missing)}, which the config of model={model} does not have; "
                f"sweep only keys it has (python train.py model={model} --cfg job lists them)."
            )
