"""The errors a user can fix, and how the entry points show them: one line, not a traceback."""

from __future__ import annotations

import functools
from typing import Any, Callable

from omegaconf import DictConfig

from mnist_lab.hydra_job import in_sweep


class UserError(ValueError):
    """Something the user can fix; the message says what is wrong and what to do."""


class ConfigError(UserError):
    """A configuration value is not allowed; the message names the key, the value and what is allowed."""


class DataError(UserError):
    """A data file is missing or malformed; the message names the file and what to do."""


class CheckpointError(UserError):
    """A checkpoint is missing, damaged, or not one of ours."""


class InputError(UserError):
    """One input of predict.py cannot be predicted; the others still are."""


def check(ok: bool, key: str, value: object, allowed: str) -> None:
    """Refuse ``key=value`` unless ``ok``, saying what is ``allowed``."""
    if not ok:
        raise ConfigError(f"{key}={value} is not allowed: {allowed}.")


def friendly_errors(main: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """A single run stops on a known problem with one line, not a traceback; sweeps record it instead."""

    @functools.wraps(main)
    def wrapper(cfg: DictConfig) -> Any:
        try:
            return main(cfg)
        except (UserError, FloatingPointError) as err:
            if in_sweep():
                raise
            raise SystemExit(f"error: {err}") from None

    return wrapper
