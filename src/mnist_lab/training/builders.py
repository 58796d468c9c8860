"""Objects built from config: callbacks, loggers and the Trainer."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import lightning as L
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig

from mnist_lab.building import build
from mnist_lab.hardware import skip_nvml_check_without_driver
from mnist_lab.known_noise import hide_known_noise


def instantiate_callbacks(cfg: DictConfig) -> list[Callback]:
    return [build(c) for c in (cfg.get("callbacks") or {}).values() if c]


def instantiate_loggers(logger: Optional[DictConfig]) -> list[Logger]:
    """The loggers of a config's ``logger`` (one node each, by name)."""
    return [build(c) for c in (logger or {}).values() if c]


NO_VAL_CHECKPOINT = "epoch{epoch:02d}"  # ModelCheckpoint's filename when there is no validation


def build_trainer(
    cfg: DictConfig, extra_callbacks: Sequence[Callback] = (), validates: bool = True, **kwargs: Any
) -> L.Trainer:
    """The Trainer of ``cfg.trainer`` with the configured callbacks, then ``extra_callbacks``, and the loggers;
    ``validates``: whether the data has validation batches."""
    callbacks = [*instantiate_callbacks(cfg), *extra_callbacks]
    if not validates or cfg.trainer.get("limit_val_batches") in (0, 0.0):
        # Nothing to monitor: keep the last epoch's checkpoint, named without a val_acc it does not have.
        for cb in callbacks:
            if isinstance(cb, ModelCheckpoint):
                cb.monitor, cb.save_top_k, cb.filename = None, 1, NO_VAL_CHECKPOINT
    loggers = instantiate_loggers(cfg.get("logger"))
    if not loggers:  # logger=[]: Lightning refuses a learning-rate monitor with nothing to log to
        callbacks = [cb for cb in callbacks if not isinstance(cb, LearningRateMonitor)]
    skip_nvml_check_without_driver()
    hide_known_noise()
    return build(cfg.trainer, callbacks=callbacks, logger=loggers or False, **kwargs)
