"""How each script starts: ``python train.py`` and the four others are ``main(<task>, <config>)``.

Once for all five: the OmegaConf resolvers, the extras a command-line choice needs, Hydra's main
on ``conf/`` beside the script, the settings checked against the task's signature, and a user's error
shown in one line.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Callable, Iterable

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from mnist_lab.errors import ConfigError, UserError
from mnist_lab.hydra_job import in_sweep
from mnist_lab.resolvers import register_resolvers
from mnist_lab.validation import check_config, nearest, signature_schema

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
    "serve": (
        ("fastapi", "uvicorn", "python_multipart", "fastapi_offline", "prometheus_fastapi_instrumentator"),
        "serve",
    ),
    "export": (("onnx", "onnxruntime"), "onnx"),
}


def require_extra(module: str, extra: str, needed_by: str) -> None:
    # An imported module is installed (optuna_integration, once imported, has no __spec__: find_spec refuses it).
    if module not in sys.modules and importlib.util.find_spec(module) is None:
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


def discard_unstarted_run() -> None:
    """Remove the job's folder when it holds only what Hydra wrote before the task ran (its .hydra/ and log):
    a run refused before it started leaves nothing behind. A folder with anything else in it is kept."""
    job = HydraConfig.get()
    folder = Path(job.runtime.output_dir)
    if not (folder.is_dir() and {p.name for p in folder.iterdir()} <= {job.output_subdir, f"{job.job.name}.log"}):
        return
    shutil.rmtree(folder)
    here = Path.cwd()
    for parent in folder.parents:  # outputs/runs/ too, where it was made for this run and is now empty
        if parent == here or here not in parent.parents or any(parent.iterdir()):
            break
        parent.rmdir()


def friendly_errors(task: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """A single run stops on a known problem with one line, not a traceback; sweeps record it instead."""

    @functools.wraps(task)
    def wrapper(cfg: DictConfig) -> Any:
        try:
            return task(cfg)
        except (UserError, FloatingPointError) as err:
            if in_sweep():
                raise
            discard_unstarted_run()
            raise SystemExit(f"error: {err}") from None

    return wrapper


def run_task(task: Callable[..., Any], cfg: DictConfig, usage: str = "") -> Any:
    """``task`` called with the composed config's top-level keys as its keyword arguments, refused in one line
    before it runs: a key left ``???`` (``usage``: how to give it), a key it does not take, a value its type
    hints rule out, an object the config builds whose class refuses its arguments. A task of ``cfg`` (train.py's
    ``run``: its config is the run's record, saved and resumed whole) is given the config and checks it itself."""
    if list(inspect.signature(task).parameters) == ["cfg"]:
        return task(cfg)
    missing = next((key for key in cfg if OmegaConf.is_missing(cfg, key)), None)
    if missing:
        raise ConfigError(f"{missing} is missing" + (f": e.g. {usage}" if usage else ""))
    check_config(signature_schema(task), cfg)
    return task(**{key: cfg[key] for key in cfg})


def config_dirs(primary: Path, args: Iterable[str]) -> list[Path]:
    """The folders Hydra composes from: the script's ``conf/`` and each ``--config-dir`` (``-cd``) given."""
    given = [arg.split("=", 1)[1] for arg in args if arg.startswith(("--config-dir=", "-cd="))]
    return [primary.parent, *map(Path, given)]


def left_out_groups(primary: Path, folders: Iterable[Path] = ()) -> dict[str, list[str]]:
    """The config groups that ``primary`` (a script's config) leaves out (``- data: null``) and whose settings
    sit under the group's name (not ``# @package _global_``, as experiments do), each with its choices in
    ``folders`` (by default the primary's own)."""
    defaults = OmegaConf.load(primary).get("defaults", [])
    null = [group for entry in defaults if isinstance(entry, DictConfig) for group, v in entry.items() if v is None]
    files = {
        group: sorted(p for f in folders or [primary.parent] for p in (f / group).glob("*.yaml")) for group in null
    }
    return {
        group: [path.stem for path in paths]
        for group, paths in files.items()
        if not any(path.read_text().startswith("# @package _global_") for path in paths)
    }


def unknown_key(err: CompactHydraException, primary: Path, args: Iterable[str]) -> str | None:
    """Hydra's refusal of ``key=value`` (one of ``args``) for a key not in the config, as one line naming the
    nearest real key. Hydra suggests ``+key=value``, which for a typo (trainer.max_epoch) only adds a key that
    nothing reads."""
    cause = err.__cause__
    if not (isinstance(cause, (ConfigAttributeError, ConfigKeyError)) and isinstance(cause.parent_node, DictConfig)):
        return None
    parent, key = cause.parent_node, str(cause.full_key)
    override = next((arg for arg in args if f"{arg.partition('=')[0]}.".startswith(f"{key}.")), None)
    if override is None:
        return None
    choices = left_out_groups(primary, config_dirs(primary, args)).get(key)
    if choices:  # eval.py's data: null (the checkpoint's data instead)
        return (
            f"error: {override}: no {key} config is chosen here, so it has no settings to change; "
            f"choose one first: {key}=<{'|'.join(sorted(set(choices)))}> {override}"
        )
    takes = getattr(signature_schema(parent["_target_"]), "__annotations__", {}) if "_target_" in parent else {}
    if key.rsplit(".", 1)[-1] in takes:  # an argument of the class that the YAML does not list
        return f"error: {override}: {key} is not in the config; add it with +{override}"
    return f"error: {override} is not allowed: there is no such setting here{nearest(key, [*parent, *takes])}."


def hydra_errors(app: Callable[[], Any], primary: Path) -> None:
    """Hydra's own errors (a missing config group, a bad override) in its short form, an unknown key with the
    nearest real one; anything else raises as it is (HYDRA_FULL_ERROR=1: Hydra reports all, as it would)."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        return app()
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises instead of printing: the message can be completed
    try:
        app()
    except CompactHydraException as err:
        cause = err.__cause__ if isinstance(err.__cause__, OmegaConfBaseException) else None
        hydras = "\n".join(filter(None, (str(err), cause and str(cause))))
        raise SystemExit(unknown_key(err, primary, sys.argv[1:]) or hydras) from None
    finally:
        del os.environ["HYDRA_FULL_ERROR"]


def main(task: Callable[..., Any], config: str) -> None:
    """Run ``task`` as a Hydra app on ``conf/<config>.yaml`` beside the running script, its settings checked by
    ``run_task``."""
    require_extras(config, sys.argv[1:])
    register_resolvers()
    conf_dir = Path(sys.argv[0]).resolve().parent / "conf"
    usage = (conf_dir / f"{config}.yaml").read_text().splitlines()[0].lstrip("# ").split("  ")[0]  # its first line
    configured = functools.wraps(task)(functools.partial(run_task, task, usage=usage))
    app = hydra.main(version_base="1.3", config_path=str(conf_dir), config_name=config)(friendly_errors(configured))
    hydra_errors(app, conf_dir / f"{config}.yaml")
