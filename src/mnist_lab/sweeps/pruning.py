"""The callback through which a run of ``sweep=optuna`` reports to its trial and is stopped when the pruner says so."""

from __future__ import annotations

from typing import Optional

import lightning as L
import optuna
from hydra.core.hydra_config import HydraConfig
from optuna_integration import PyTorchLightningPruningCallback

from mnist_lab.errors import ConfigError
from mnist_lab.sweeps.study import open_study, running_trial
from mnist_lab.training.run_folder import PRUNED_AT


class TrialPruning(PyTorchLightningPruningCallback):
    """optuna-integration's pruning callback for trial number ``trial`` of the sweep's study.

    The sweeper gives each run its trial as the override ``trial=N``; the run reopens the study from
    the sweeper's settings in its Hydra config (a job process, or a SLURM job, can), with its pruner.
    """

    def __init__(self, trial: Optional[int], monitor: str = "val_acc") -> None:
        if trial is None or not HydraConfig.initialized():
            raise ConfigError("trial=None is not allowed: sweep=optuna gives each of its runs a trial number")
        super().__init__(running_trial(open_study(HydraConfig.get().sweeper), trial), monitor)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        try:
            super().on_validation_end(trainer, pl_module)
        except optuna.TrialPruned:
            # What the run's record says it trained and reached.
            epochs = pl_module.current_epoch + 1
            pruned = optuna.TrialPruned(f"stopped by the sweep's pruner after {epochs} of {trainer.max_epochs} epochs")
            pruned.epochs = epochs
            pruned.metrics = {key: float(value) for key, value in trainer.callback_metrics.items()}
            for logger in trainer.loggers:
                logger.log_metrics({PRUNED_AT: epochs}, step=trainer.global_step)
            raise pruned from None
