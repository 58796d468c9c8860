"""Objects built from config: callbacks, loggers and the Trainer."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Sequence

import lightning as L
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig
from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveInt
from typing_extensions import TypedDict

from mnist_lab.building import build
from mnist_lab.hardware import skip_nvml_check_without_driver
from mnist_lab.known_noise import hide_known_noise
from mnist_lab.validation import narrow


@narrow("lightning.pytorch.Trainer")
class TrainerBounds(TypedDict, total=False):
    """What Lightning's Trainer takes unchecked: max_epochs=0 trains nothing and reports success, and the
    training step divides by log_every_n_steps; and what it checks only once built, after the model is."""

    max_epochs: Optional[Literal[-1] | PositiveInt]  # -1: until max_steps
    max_steps: Literal[-1] | NonNegativeInt  # -1: no limit
    # null: all batches; an int: that many; a float: that fraction
    limit_train_batches: Optional[NonNegativeInt | Annotated[float, Field(ge=0, le=1)]]
    limit_val_batches: Optional[NonNegativeInt | Annotated[float, Field(ge=0, le=1)]]
    limit_test_batches: Optional[NonNegativeInt | Annotated[float, Field(ge=0, le=1)]]
    log_every_n_steps: PositiveInt
    check_val_every_n_epoch: Optional[PositiveInt]
    gradient_clip_val: Optional[NonNegativeFloat]


@narrow("lightning.pytorch.callbacks.ModelSummary")
class ModelSummaryBounds(TypedDict, total=False):
    max_depth: Annotated[int, Field(ge=-1)]  # -1: every layer; Lightning refuses others only once the data is read


def instantiate_callbacks(cfg: DictConfig) -> list[Callback]:
    return [build(c) for c in (cfg.get("callbacks") or {}).values() if c]


def instantiate_loggers(cfg: DictConfig) -> list[Logger]:
    return [build(c) for c in (cfg.get("logger") or {}).values() if c]


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
    loggers = instantiate_loggers(cfg)
    if not loggers:  # logger=[]: Lightning refuses a learning-rate monitor with nothing to log to
        callbacks = [cb for cb in callbacks if not isinstance(cb, LearningRateMonitor)]
    skip_nvml_check_without_driver()
    hide_known_noise()
    return build(cfg.trainer, callbacks=callbacks, logger=loggers or False, **kwargs)
