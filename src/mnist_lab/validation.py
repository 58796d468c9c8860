"""Settings validated by pydantic before anything is built: each ``_target_`` against its signature.

A node's arguments are checked against the target's type hints, which carry the project's own
bounds (``Annotated[float, Field(gt=0)]``), and against the narrower bounds ``NARROWED`` sets on a
library's arguments. Values are validated as the JSON data a YAML config is, in strict mode:
``true`` is not an integer, nor ``1.5``, and ``"abc"`` is no number, while a list is a tuple and a
string a path. A refusal is one ``ConfigError`` naming the full key.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import json
import typing
from typing import Annotated, Any, Callable, Iterable, Iterator, Literal, Mapping, Optional

from hydra.utils import get_object
from omegaconf import DictConfig, ListConfig, OmegaConf
from pydantic import ConfigDict, Field, NonNegativeFloat, NonNegativeInt, PositiveInt, TypeAdapter, ValidationError
from typing_extensions import NotRequired, TypedDict  # pydantic needs this TypedDict on Python < 3.12

from mnist_lab.errors import ConfigError

Seed = Annotated[int, Field(ge=0, lt=2**32)]  # what torch's and numpy's generators take
STRICT = ConfigDict(strict=True, arbitrary_types_allowed=True)
Text = Annotated[str, Field(min_length=1)]  # a path, an address: not empty
# A script's setting that is a config node (a DictConfig) it builds: checked against the classes it names.
ConfigNode = Any


class TrainerBounds(TypedDict, total=False):
    """What Lightning's Trainer takes unchecked: max_epochs=0 trains nothing and reports success, and the
    training step divides by log_every_n_steps; and what it checks only once built, after the model is."""

    __pydantic_config__ = ConfigDict(STRICT, extra="ignore")  # type: ignore[misc]
    max_epochs: Optional[Literal[-1] | PositiveInt]  # -1: until max_steps
    max_steps: Literal[-1] | NonNegativeInt  # -1: no limit
    # null: all batches; an int: that many; a float: that fraction
    limit_train_batches: Optional[NonNegativeInt | Annotated[float, Field(ge=0, le=1)]]
    limit_val_batches: Optional[NonNegativeInt | Annotated[float, Field(ge=0, le=1)]]
    limit_test_batches: Optional[NonNegativeInt | Annotated[float, Field(ge=0, le=1)]]
    log_every_n_steps: PositiveInt
    check_val_every_n_epoch: Optional[PositiveInt]
    gradient_clip_val: Optional[NonNegativeFloat]


class ModelSummaryBounds(TypedDict, total=False):
    __pydantic_config__ = ConfigDict(STRICT, extra="ignore")  # type: ignore[misc]
    max_depth: Annotated[int, Field(ge=-1)]  # -1: every layer; Lightning refuses others only once the data is read


# A library's arguments bounded more narrowly than its signature: the TypedDict's fields, by name.
NARROWED = {"lightning.pytorch.Trainer": TrainerBounds, "lightning.pytorch.callbacks.ModelSummary": ModelSummaryBounds}


@functools.cache
def _adapter(schema: Any) -> TypeAdapter:
    return TypeAdapter(schema)


@functools.cache
def signature_schema(target: str | Callable) -> type | None:
    """A TypedDict of ``target``'s keyword arguments and their type hints (a class, a function, or the dotted path
    of one); None where pydantic has none."""
    try:
        obj = get_object(target) if isinstance(target, str) else target
        parameters = inspect.signature(obj).parameters.values()
        hints = typing.get_type_hints(obj.__init__ if isinstance(obj, type) else obj, include_extras=True)
        named = {
            p.name: NotRequired[hints.get(p.name, Any)]
            for p in parameters
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        }
        schema = TypedDict(target if isinstance(target, str) else obj.__qualname__, named)
        extra = "allow" if any(p.kind == p.VAR_KEYWORD for p in parameters) else "forbid"
        schema.__pydantic_config__ = ConfigDict(STRICT, extra=extra)
        _adapter(schema)
        return schema
    except Exception:  # noqa: BLE001 - no target (Hydra says so), hints only type checkers resolve, no schema
        return None


def _builds(value: Any) -> bool:
    """Whether ``value`` is, or holds, a node built on its own (checked as a node itself)."""
    if isinstance(value, dict):
        return "_target_" in value or any(_builds(v) for v in value.values())
    return isinstance(value, list) and any(_builds(v) for v in value)


def _arguments(node: Any) -> dict[str, Any]:
    """The node's arguments as data, but for the nested nodes Hydra builds first (unless ``_recursive_: false``)."""
    plain = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    built_first = plain.get("_recursive_", True)
    return {k: v for k, v in plain.items() if not k.startswith("_") and not (built_first and _builds(v))}


def _located(values: Any, loc: tuple) -> tuple[str, Any]:
    """The key and value at a pydantic error's location, without the names of union members in it."""
    path, value = "", values
    for part in loc:
        if isinstance(value, dict) and part in value:
            path, value = f"{path}.{part}".lstrip("."), value[part]
        elif isinstance(value, list) and isinstance(part, int) and part < len(value):
            path, value = f"{path}[{part}]", value[part]
        elif not isinstance(part, str):  # a string here names a union's member: look past it
            break
    return path, value


def _depth(path: str) -> int:
    return path.count(".") + path.count("[")


def nearest(key: str, known: Iterable[str]) -> str:
    """'; the nearest one is <the closest known key>', or nothing when none is close."""
    *parent, name = key.split(".")
    match = difflib.get_close_matches(name, list(known), n=1)
    return f"; the nearest one is {'.'.join([*parent, match[0]])}" if match else ""


def _reason(errors: list[dict], schema: Any, key: str) -> str:
    """pydantic's messages for one setting as one clause: 'input should be -1 or greater than 0'."""
    if errors[0]["type"] == "extra_forbidden":
        known = getattr(schema, "__annotations__", {}) if len(errors[0]["loc"]) == 1 else {}
        return "there is no such setting here" + nearest(key, known)
    first, *more = dict.fromkeys(e["msg"] for e in errors)
    return " or ".join([first[0].lower() + first[1:], *(m.removeprefix("Input should be ") for m in more)])


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else str(value)


def validate(schema: Any, values: Mapping[str, Any], where: str = "") -> None:
    """Refuse ``values`` that ``schema`` rules out, naming the first bad one as ``<where>.<key>=<value>``."""
    try:
        _adapter(schema).validate_json(json.dumps(values, default=_plain))
    except ValidationError as err:
        errors = [e for e in err.errors() if e["type"] != "needs_python_object"] or err.errors()
        # Where a union's members disagree (a number or a list of them), the error deepest in the value
        # names the bad item: hidden[0]=abc, not hidden=['abc'].
        located = [_located(values, e["loc"]) for e in errors]
        path, value = max(located, key=lambda found: _depth(found[0]))
        same = [e for e, (at, _) in zip(errors, located) if at == path]
        key = ".".join(filter(None, (where, path)))
        raise ConfigError(f"{key}={value} is not allowed: {_reason(same, schema, key)}.") from None


def _nodes(node: Any, where: str) -> Iterator[tuple[str, Any]]:
    """Every node with a ``_target_`` in ``node``, itself included, outermost first, with its key."""
    if isinstance(node, (dict, DictConfig)):
        if "_target_" in node:
            yield (node._get_full_key(None) if isinstance(node, DictConfig) else where), node
        children = node.items_ex(resolve=False) if isinstance(node, DictConfig) else node.items()
        for key, child in children:
            yield from _nodes(child, f"{where}.{key}".lstrip("."))
    elif isinstance(node, (list, ListConfig)):
        for i, child in enumerate(node):
            yield from _nodes(child, f"{where}[{i}]")


def check_arguments(conf: Any, where: str = "") -> None:
    """Every object ``conf`` builds, validated against its target's signature and narrowed bounds."""
    for key, node in _nodes(conf, where):
        for schema in (signature_schema(node["_target_"]), NARROWED.get(node["_target_"])):
            if schema is not None:
                validate(schema, _arguments(node), key)


def check_config(settings: Any, cfg: DictConfig) -> None:
    """A script's whole config, before anything is read or built: its own top-level ``settings`` (a TypedDict;
    any other key is refused, naming the nearest real one) and the arguments of every object it builds."""
    validate(settings, {key: None if OmegaConf.is_missing(cfg, key) else cfg[key] for key in cfg})
    check_arguments(cfg)
