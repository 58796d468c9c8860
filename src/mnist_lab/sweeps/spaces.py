"""Search spaces the flat sweep syntax cannot say, for ``hydra.sweeper.custom_search_space`` (docs/sweeps.md).

A custom space is a function ``(cfg, trial) -> overrides or None``: it suggests on the Optuna ``trial`` with
keys that are overrides (``model.optimizer.lr``, a config group's ``model/optimizer``), each trial's
parameters becoming its run's overrides, and may return more overrides to set as they are.
"""

from __future__ import annotations

from typing import Any, Optional

import optuna
from omegaconf import DictConfig


def optimizer_space(cfg: DictConfig, trial: optuna.Trial) -> Optional[dict[str, Any]]:
    """SGD or AdamW, with momentum searched for SGD only (AdamW has none), and the learning rate around the
    model's own for both."""
    optimizer = trial.suggest_categorical("model/optimizer", ["sgd", "adamw"])
    lr = cfg.model.optimizer.lr
    trial.suggest_float("model.optimizer.lr", lr / 10, lr * 10, log=True)
    if optimizer == "sgd":
        trial.suggest_float("model.optimizer.momentum", 0.0, 0.95)
    return None
