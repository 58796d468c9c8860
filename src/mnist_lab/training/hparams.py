"""The flat, comparable settings of a run, shown in TensorBoard's HPARAMS tab beside its results."""

from __future__ import annotations

import inspect
from typing import Any, Callable, Sequence

import lightning as L
from hydra.utils import get_class
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch.utils.tensorboard.summary import hparams as hparams_summary

from mnist_lab.sweeps.naming import names_run
from mnist_lab.training.run_folder import PRUNED_AT, RESULTS


def _name(target: str) -> str:
    return target.rsplit(".", 1)[-1]


# The settings every run shows, by the key a user sets each with (a config group's choice: "group/option").
COMMON: dict[str, Callable[[DictConfig], Any]] = {
    "model": lambda cfg: _name(cfg.model.net._target_),
    "model/optimizer": lambda cfg: _name(cfg.model.optimizer._target_),
    "model.optimizer.lr": lambda cfg: cfg.model.optimizer.lr,
    "model.optimizer.weight_decay": lambda cfg: cfg.model.optimizer.get("weight_decay", 0.0),
    "model/scheduler": lambda cfg: _name(cfg.model.scheduler._target_) if cfg.model.get("scheduler") else "none",
    "model.net.dropout": lambda cfg: cfg.model.net.get("dropout", 0.0),
    "model.label_smoothing": lambda cfg: cfg.model.get("label_smoothing", 0.0),
    "trainer.max_epochs": lambda cfg: cfg.trainer.max_epochs,
    "data.batch_size": lambda cfg: cfg.data.get("batch_size", "none"),  # a user's DataModule may have none
    "data.augment": lambda cfg: bool(cfg.data.get("augment")),
    "seed": lambda cfg: cfg.seed if cfg.get("seed") is not None else "none",
    "trainer.precision": lambda cfg: str(cfg.trainer.precision),
}


def _plain(value: Any) -> Any:
    """A value as HPARAMS shows it: numbers, text and booleans as they are, a list or dict as its text."""
    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value, resolve=True)
    return value if isinstance(value, (bool, int, float, str)) else "none" if value is None else str(value)


def network_arguments(net: DictConfig) -> dict[str, Any]:
    """Every argument of the network's class, as its config sets it or by default (the data's are the data's)."""
    from mnist_lab.models.classifier import DATA_ARGUMENTS

    try:
        parameters = inspect.signature(get_class(net._target_)).parameters.values()
    except Exception:  # noqa: BLE001 - a class that cannot be imported has been refused before a run
        return {}
    given = {p.name: net.get(p.name, p.default) for p in parameters if p.default is not p.empty or p.name in net}
    return {f"model.net.{k}": v for k, v in given.items() if k not in DATA_ARGUMENTS}


def changed(cfg: DictConfig, overrides: Sequence[str]) -> dict[str, Any]:
    """Each setting a run's overrides (its command line, or its sweep's choice) set: a group's choice as written
    (sgd), any other key as the composed config holds it."""
    found = {}
    for key, _, written in (override.partition("=") for override in overrides):
        key = key.lstrip("+~")
        if names_run(key):  # a group's choice ("/", or a whole node) and a deleted key: as written
            value = None if "/" in key else OmegaConf.select(cfg, key, default=None)
            found[key] = written if value is None or isinstance(value, DictConfig) else value
    return found


def columns(params: dict[str, Any]) -> dict[str, Any]:
    """Full keys shortened to their last part, as run folders name them, unless two share it."""
    short = {key: key.replace("/", ".").rsplit(".", 1)[-1] for key in params}
    names = list(short.values())
    return {short[key] if names.count(short[key]) == 1 else key: value for key, value in params.items()}


def run_hparams(cfg: DictConfig, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The run's settings for HPARAMS: the common ones, its network's arguments and whatever its overrides set."""
    params = {key: read(cfg) for key, read in COMMON.items()}
    params |= network_arguments(cfg.model.net) | changed(cfg, overrides)
    return columns({key: _plain(value) for key, value in params.items()})


def trained_with(run_config: dict | None) -> str:
    """One line on what a checkpoint was trained with, from the run config it carries."""
    if run_config is None:
        return "Trained with: not recorded (checkpoints saved before this version carry no run config)."
    return "Trained with: " + ", ".join(f"{k}={v}" for k, v in run_hparams(OmegaConf.create(run_config)).items())


def _as_shown(params: dict[str, Any]) -> dict[str, Any]:
    """Whole numbers and booleans as text: TensorBoard's HPARAMS table shows every number as a float
    (batch_size 256.00), and torch's summary stores a bool as the number 0 (augment 0.0000)."""
    return {
        k: str(v).lower() if isinstance(v, bool) else str(v) if isinstance(v, int) else v for k, v in params.items()
    }


@rank_zero_only
def log_hparams(trainer: L.Trainer, params: dict[str, Any]) -> None:
    """Fill TensorBoard's HPARAMS tab with ``params`` and the names of a run's RESULTS.

    Unlike ``TensorBoardLogger.log_hyperparams(params, metrics)`` this writes no placeholder values
    for the metrics: the tab shows the real ``val_acc_best``/``test_acc`` scalars logged later.
    """
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.hparams.update(params)  # for its hparams.yaml
            writer = logger.experiment._get_file_writer()
            for summary in hparams_summary(_as_shown(params), dict.fromkeys((*RESULTS, PRUNED_AT), 0.0)):
                writer.add_summary(summary)
        else:
            logger.log_hyperparams(params)
