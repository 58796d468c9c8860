"""The flat, comparable settings of a run, shown in TensorBoard's HPARAMS tab beside its results."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf
from torch.utils.tensorboard.summary import hparams as hparams_summary

from mnist_lab.training.run_folder import PRUNED_AT, RESULTS


def _name(target: str) -> str:
    return target.rsplit(".", 1)[-1]


def run_hparams(cfg: DictConfig) -> dict[str, Any]:
    model = cfg.model
    return {
        "model": _name(model.net._target_),
        "optimizer": _name(model.optimizer._target_),
        "lr": model.optimizer.lr,
        "weight_decay": model.optimizer.get("weight_decay", 0.0),
        "scheduler": _name(model.scheduler._target_) if model.get("scheduler") else "none",
        "dropout": model.net.get("dropout", 0.0),
        "label_smoothing": model.get("label_smoothing", 0.0),
        "max_epochs": cfg.trainer.max_epochs,
        "batch_size": cfg.data.get("batch_size", "none"),  # a user's DataModule may have neither
        "augment": bool(cfg.data.get("augment")),
        "seed": cfg.seed if cfg.get("seed") is not None else "none",
        "precision": str(cfg.trainer.precision),
    }


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
