"""Objects built from config: Hydra's ``instantiate``, and a library's refusal of an argument turned into one line
naming its key. The arguments were validated once before (``validation.check_config``, the scripts' first step)."""

from __future__ import annotations

import re
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.fabric.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig

from mnist_lab.errors import ConfigError, UserError

# What a library's class raises for an argument it refuses: the user's setting, not a bug.
REFUSALS = (TypeError, ValueError, MisconfigurationException)


def build(conf: Any, where: str = "", **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` of ``conf``; ``where``: its key when it is a plain dict.

    A refused argument raises a UserError, not Hydra's wrapper of it: our own error, or a
    ConfigError naming the node for a library's refusal (Lightning's Trainer checks its own).
    """
    try:
        return instantiate(conf, **kwargs)
    except InstantiationException as err:
        cause: BaseException = err
        # One wrapper per nesting level.
        while isinstance(cause, InstantiationException) and cause.__cause__ is not None:
            cause = cause.__cause__
        if isinstance(cause, UserError):
            raise cause from None
        if isinstance(cause, REFUSALS):
            raise ConfigError(_refusal(conf, cause, where)) from None
        raise


def _refusal(conf: Any, cause: BaseException, where: str) -> str:
    """A library's refusal of ``conf``, naming the one setting its message names (Lightning names its arguments)."""
    where = conf._get_full_key(None) if isinstance(conf, DictConfig) else where or conf.get("_target_")
    # "plugin" or "plugins": messages name one item of a list-valued argument too.
    mentions = [key for key in conf if not str(key).startswith("_")]
    named = [key for key in mentions if re.search(rf"\b{key.removesuffix('s')}s?\b", str(cause))]
    if len(named) == 1:
        key = named[0]
        return f"{where}.{key}={conf[key]} is not allowed: {cause}" if where else f"{key}={conf[key]}: {cause}"
    return f"{where or 'config'}: {cause}"
