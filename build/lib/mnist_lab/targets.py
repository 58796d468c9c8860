"""Objects built from config (``_target_``): where stored class paths live now, their arguments' types, the build.

Checkpoints and run folders store class paths (``net._target_``, ``.hydra/config.yaml``). Every
object of this project is built through ``build``, so a path from before a module moved is
mapped here, in one place, and every argument is checked here against its annotation.
"""

from __future__ import annotations

import collections.abc
import copy
import os
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

from hydra.errors import InstantiationException
from hydra.utils import get_object, instantiate
from lightning.fabric.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig, ListConfig, OmegaConf

from mnist_lab.errors import ConfigError, UserError, check

# Class paths stored before the package was grouped into folders -> where they are now.
MOVED = {
    "mnist_lab.data.MNISTDataModule": "mnist_lab.data.datamodule.MNISTDataModule",
    "mnist_lab.module.DigitClassifier": "mnist_lab.models.classifier.DigitClassifier",
    "mnist_lab.module.piecewise_lr": "mnist_lab.models.schedules.piecewise_lr",
    "mnist_lab.checkpoint_io.AtomicCheckpointIO": "mnist_lab.training.checkpoint_io.AtomicCheckpointIO",
    "mnist_lab.callbacks.AtomicCheckpointIO": "mnist_lab.training.checkpoint_io.AtomicCheckpointIO",
    **{
        f"mnist_lab.networks.{name}": f"mnist_lab.models.networks.{name}"
        for name in ("CNN", "DeepCNN", "LogReg", "MLP")
    },
    **{
        f"mnist_lab.callbacks.{name}": f"mnist_lab.training.callbacks.{name}"
        for name in ("ProgressBar", "WeightHistograms", "EpochHistory", "TestFigures", "EMA", "InterruptCheckpoint")
    },
}
# What a library's class raises for an argument it refuses: the user's setting, not a bug.
REFUSALS = (TypeError, ValueError, MisconfigurationException)
TYPE_NAMES = {
    bool: "true or false",
    int: "an integer",
    float: "a number",
    str: "a string",
    dict: "a mapping",
    list: "a list",
    Path: "a path",
    type(None): "null",
}
# Annotations that name a kind of value by another type: os.PathLike is a path, a Sequence a list.
KINDS = {os.PathLike: Path, collections.abc.Sequence: list, typing.Sequence: list, tuple: list}


def _children(node: Any) -> list[Any]:
    if isinstance(node, DictConfig):
        return [value for _, value in node.items_ex(resolve=False)]
    if isinstance(node, ListConfig):
        return [node._get_node(i) for i in range(len(node))]  # unresolved, like items_ex
    return list(node.values()) if isinstance(node, dict) else list(node) if isinstance(node, list) else []


def _targets(node: Any) -> list[Any]:
    """Every node with a ``_target_`` in ``node``, itself included, outermost first."""
    found = [node] if isinstance(node, (dict, DictConfig)) and "_target_" in node else []
    return found + [t for child in _children(node) for t in _targets(child)]


def current_targets(conf: Any) -> Any:
    """A copy of ``conf`` in which every moved ``_target_``, at any depth, names where it lives now."""
    conf = copy.deepcopy(conf)
    if isinstance(conf, (DictConfig, ListConfig)):
        OmegaConf.set_readonly(conf, False)  # a copy of a read-only config (Hydra's own) is ours to change
    for node in _targets(conf):
        node["_target_"] = MOVED.get(node["_target_"], node["_target_"])
    return conf


def _allowed(hint: Any) -> list[Any] | None:
    """The plain types and Literal values ``hint`` admits, or None where it admits anything else too."""
    if typing.get_origin(hint) in (Union, types.UnionType):
        parts = [_allowed(arg) for arg in typing.get_args(hint)]
        return None if None in parts else [a for part in parts for a in part]
    if typing.get_origin(hint) is Literal:
        return [repr(arg) for arg in typing.get_args(hint)]
    kind = typing.get_origin(hint) or hint
    kind = KINDS.get(kind, kind)
    return [kind] if kind in TYPE_NAMES else None


def fits(value: Any, allowed: list[Any]) -> bool:
    """Whether ``value`` is of a kind in ``allowed`` (types of TYPE_NAMES, or a Literal's repr); an int is a number."""
    value = {DictConfig: {}, ListConfig: []}.get(type(value), value)  # only their kind matters here
    for kind in allowed:
        if isinstance(kind, str):  # a Literal's value
            if repr(value) == kind:
                return True
        elif kind is Path and isinstance(value, (str, Path)):
            return True
        elif kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        elif isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
            return True
    return False


def _hints(target: str) -> dict[str, Any]:
    try:
        obj = get_object(target)
        return typing.get_type_hints(obj.__init__ if isinstance(obj, type) else obj)
    except Exception:  # noqa: BLE001 - no usable annotations: nothing to check here
        return {}


def check_arguments(conf: Any) -> None:
    """Refuse a setting whose type its class's annotation rules out (``trainer.max_epochs=1.5``), naming its key."""
    for node in _targets(conf):
        hints = _hints(node["_target_"])
        for key in node:
            allowed = _allowed(hints.get(key)) if key in hints else None
            if allowed is not None and not fits(node[key], allowed):
                name = node._get_full_key(key) if isinstance(node, DictConfig) else key
                shown = " or ".join(TYPE_NAMES.get(kind, kind) for kind in allowed)
                check(False, name, node[key], f"it must be {shown}")


def build(conf: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` of ``conf`` with its moved targets mapped and its arguments checked.

    A refused argument raises a UserError, not Hydra's wrapper of it: our own error, or a
    ConfigError naming the node for a library's refusal (Lightning's Trainer checks its own).
    """
    conf = current_targets(conf)
    check_arguments(conf)
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
            raise ConfigError(_refusal(conf, cause)) from None
        raise


def _refusal(conf: Any, cause: BaseException) -> str:
    """A library's refusal of ``conf``, naming the one setting its message names (Lightning names its arguments)."""
    where = conf._get_full_key(None) if isinstance(conf, DictConfig) else conf.get("_target_")
    # "plugin" or "plugins": messages name one item of a list-valued argument too.
    mentions = [key for key in conf if not str(key).startswith("_")]
    named = [key for key in mentions if re.search(rf"\b{key.removesuffix('s')}s?\b", str(cause))]
    if len(named) == 1:
        key = named[0]
        return f"{where}.{key}={conf[key]} is not allowed: {cause}" if where else f"{key}={conf[key]}: {cause}"
    return f"{where or 'config'}: {cause}"
