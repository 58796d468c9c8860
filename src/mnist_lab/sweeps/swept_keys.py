"""A sweep over a key the composed config lacks is refused once, before any run is launched."""

from __future__ import annotations

from typing import Any, Optional

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf


def _swept_keys(config: DictConfig) -> list[str]:
    from_command_line = [o.partition("=")[0] for o in config.hydra.overrides.task if "=" in o]
    return from_command_line + list(config.hydra.sweeper.get("params") or {})


def missing_keys(config: DictConfig, keys: Optional[list[str]] = None) -> list[str]:
    """``keys`` (default: those the sweep sets) that the composed config does not have (and that are no config
    group)."""
    groups = set(config.hydra.runtime.choices)
    missing = []
    for key in _swept_keys(config) if keys is None else keys:
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
