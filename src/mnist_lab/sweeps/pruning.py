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
        if _last_epoch(trainer, pl_module):
            # Stopping now saves no training: the value is reported, and the run finishes and is tested.
            score = trainer.callback_metrics.get(self.monitor)
            if score is not None and not trainer.sanity_checking and trainer.is_global_zero:
                self._trial.report(float(score), step=pl_module.current_epoch)
            return
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


def _last_epoch(trainer: L.Trainer, pl_module: L.LightningModule) -> bool:
    """Whether this validation is in the run's last epoch (by max_epochs, or max_steps when that ends it first)."""
    last_by_epochs = trainer.max_epochs not in (None, -1) and pl_module.current_epoch + 1 >= trainer.max_epochs
    last_by_steps = trainer.max_steps not in (None, -1) and trainer.global_step >= trainer.max_steps
    return last_by_epochs or last_by_steps
