"""How each script starts: ``python train.py`` and the four others are ``main(<task>, <config>)``.

Once for all five: the OmegaConf resolvers, the extras a command-line choice needs, Hydra's main
on ``conf/`` beside the script, and a user's error shown in one line.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path
from typing import Any, Callable, Iterable

import hydra
from omegaconf import DictConfig

from mnist_lab.errors import UserError
from mnist_lab.hydra_job import in_sweep
from mnist_lab.resolvers import register_resolvers

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
    ("logger", "wandb"): ("wandb", "wandb"),
    ("backend", "onnx"): ("onnxruntime", "onnx"),  # predict.py and serve.py
}
# What a script needs whatever its settings: its name -> (the modules, the extra).
SCRIPT_EXTRAS = {
    "serve": (("fastapi", "uvicorn", "python_multipart"), "serve"),
    "export": (("onnx", "onnxruntime"), "onnx"),
}


def require_extra(module: str, extra: str, needed_by: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise SystemExit(
            f'error: {needed_by} needs the "{extra}" extra, which is not installed: pip install -e ".[{extra}]"'
        )


def require_extras(config: str, args: Iterable[str]) -> None:
    """Stop with the install command when the script or a command-line choice needs an extra that is not installed.

    Hydra would only say that it cannot find ``hydra/sweeper/optuna`` in its search path, and
    Lightning would name MLflow's package, not the project's extra.
    """
    modules, extra = SCRIPT_EXTRAS.get(config, ((), ""))
    for module in modules:
        require_extra(module, extra, f"{config}.py")
    for arg in args:
        group, _, options = arg.partition("=")
        for option in options.strip("[]").split(","):  # logger=[tensorboard,wandb]: each option
            module, extra = EXTRAS.get((group.lstrip("+"), option.strip()), (None, None))
            if module:
                require_extra(module, extra, arg)


def friendly_errors(task: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """A single run stops on a known problem with one line, not a traceback; sweeps record it instead."""

    @functools.wraps(task)
    def wrapper(cfg: DictConfig) -> Any:
        try:
            return task(cfg)
        except (UserError, FloatingPointError) as err:
            if in_sweep():
                raise
            raise SystemExit(f"error: {err}") from None

    return wrapper


def main(task: Callable[[DictConfig], Any], config: str) -> None:
    """Run ``task`` as a Hydra app on ``conf/<config>.yaml`` beside the running script."""
    require_extras(config, sys.argv[1:])
    register_resolvers()
    conf_dir = Path(sys.argv[0]).resolve().parent / "conf"
    hydra.main(version_base="1.3", config_path=str(conf_dir), config_name=config)(friendly_errors(task))()
