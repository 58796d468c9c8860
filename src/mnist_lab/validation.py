"""Settings validated by pydantic before anything is built: each ``_target_`` against its signature.

A config node with a ``_target_`` is checked against the target's type hints, which carry the
project's own bounds (``Annotated[float, Field(gt=0)]``), plus any bounds the project ``narrow``s a
library's arguments to. Values are validated as the JSON data a YAML config is, in strict mode:
``true`` is not an integer, ``1.5`` not an integer and ``"abc"`` not a number, while a list is a
tuple and a string a path. A refusal is one ``ConfigError`` naming the full key.
"""

from __future__ import annotations

import functools
import inspect
import json
import typing
from typing import Annotated, Any, Iterator, Mapping

from hydra.utils import get_object
from omegaconf import DictConfig, ListConfig, OmegaConf
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError
from typing_extensions import NotRequired, TypedDict  # pydantic needs its TypedDict on Python < 3.12

from mnist_lab.errors import ConfigError

Seed = Annotated[int, Field(ge=0, lt=2**32)]  # what torch's and numpy's generators take
STRICT = ConfigDict(strict=True, arbitrary_types_allowed=True)
# Narrower bounds for a library's arguments than its own signature states: target -> a TypedDict.
NARROWED: dict[str, type] = {}


def narrow(target: str) -> Any:
    """Class decorator: the TypedDict's fields bound ``target``'s arguments of the same names."""

    def register(bounds: type) -> type:
        bounds.__pydantic_config__ = ConfigDict(STRICT, extra="ignore")
        NARROWED[target] = bounds
        return bounds

    return register


@functools.cache
def _adapter(schema: Any) -> TypeAdapter:
    return TypeAdapter(schema)


def _hints(target: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(target.__init__ if isinstance(target, type) else target, include_extras=True)
    except Exception:  # noqa: BLE001 - hints naming what only type checkers import: nothing to check against
        return {}


def _typed_dict(name: str, hints: dict[str, Any], extra: str) -> type:
    schema = TypedDict(name, {key: NotRequired[hint] for key, hint in hints.items()})
    schema.__pydantic_config__ = ConfigDict(STRICT, extra=extra)
    return schema


def _checkable(hint: Any) -> Any:
    """``hint``, or Any where pydantic cannot build a validator for it (a library's exotic annotation)."""
    try:
        TypeAdapter(_typed_dict("probe", {"value": hint}, "forbid"))
        return hint
    except Exception:  # noqa: BLE001 - any schema error means the same here
        return Any


@functools.cache
def signature_schema(target: str) -> type | None:
    """A TypedDict of ``target``'s keyword arguments and their type hints, or None without a signature."""
    try:
        obj = get_object(target)
        parameters = inspect.signature(obj).parameters.values()
    except Exception:  # noqa: BLE001 - Hydra names a target it cannot find when it builds it
        return None
    hints = _hints(obj)
    named = {p.name: hints.get(p.name, Any) for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    extra = "allow" if any(p.kind == p.VAR_KEYWORD for p in parameters) else "forbid"
    try:
        _adapter(schema := _typed_dict(target, named, extra))
    except Exception:  # noqa: BLE001 - one annotation pydantic cannot check: check the others
        schema = _typed_dict(target, {key: _checkable(hint) for key, hint in named.items()}, extra)
    return schema


def _builds_objects(value: Any) -> bool:
    """Whether ``value`` is, or holds, a node that is built itself (checked as a node of its own)."""
    if isinstance(value, (dict, DictConfig)):
        return "_target_" in value or any(_builds_objects(v) for v in value.values())
    if isinstance(value, (list, ListConfig)):
        return any(_builds_objects(v) for v in value)
    return False


def _arguments(node: Any) -> dict[str, Any]:
    """The node's arguments as plain data, but for nested nodes that Hydra builds before it (``_recursive_``)."""
    plain = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    nested_built = plain.get("_recursive_", True)
    return {k: v for k, v in plain.items() if not str(k).startswith("_") and not (nested_built and _builds_objects(v))}


def _located(values: Any, loc: tuple) -> tuple[str, Any]:
    """The key path and value of a pydantic error's location, without the names of union members."""
    path, value = "", values
    for part in loc:
        if isinstance(value, dict) and part in value:
            path, value = f"{path}.{part}" if path else str(part), value[part]
        elif isinstance(value, list) and isinstance(part, int) and part < len(value):
            path, value = f"{path}[{part}]", value[part]
        else:
            break
    return path, value


def _reason(errors: list[dict]) -> str:
    """pydantic's messages for one setting as one clause: 'input should be a valid integer or -1'."""
    if errors[0]["type"] == "extra_forbidden":
        return "there is no such setting here"
    texts = list(dict.fromkeys(e["msg"] for e in errors))
    first, more = texts[0], [t.removeprefix("Input should be ") for t in texts[1:]]
    return " or ".join([first[0].lower() + first[1:], *more])


def _plain(value: Any) -> Any:
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return str(value)  # a Path, say: what it would be in YAML


def validate(schema: Any, values: Mapping[str, Any], where: str = "") -> None:
    """Refuse ``values`` that ``schema`` rules out, naming the first bad one as ``<where>.<key>=<value>``."""
    try:
        _adapter(schema).validate_json(json.dumps(values, default=_plain))
    except ValidationError as err:
        errors = [e for e in err.errors() if e["type"] != "needs_python_object"] or err.errors()
        path, value = _located(values, errors[0]["loc"])
        same = [e for e in errors if _located(values, e["loc"])[0] == path]
        key = f"{where}.{path}" if where and path else where or path
        raise ConfigError(f"{key}={value} is not allowed: {_reason(same)}.") from None


def _key(node: Any, where: str) -> str:
    return node._get_full_key(None) if isinstance(node, DictConfig) else where


def _nodes(node: Any, where: str) -> Iterator[tuple[str, Any]]:
    """Every node with a ``_target_`` in ``node``, itself included, outermost first, with its key."""
    if isinstance(node, (dict, DictConfig)):
        if "_target_" in node:
            yield _key(node, where), node
        children = node.items_ex(resolve=False) if isinstance(node, DictConfig) else node.items()
        for key, child in children:
            yield from _nodes(child, f"{where}.{key}" if where else str(key))
    elif isinstance(node, (list, ListConfig)):
        for i, child in enumerate(node):
            yield from _nodes(child, f"{where}[{i}]")


def check_arguments(conf: Any, where: str = "") -> None:
    """Every object ``conf`` builds, validated against its target's signature (and narrowed bounds)."""
    for key, node in _nodes(conf, where):
        values = _arguments(node)
        for schema in (signature_schema(node["_target_"]), NARROWED.get(node["_target_"])):
            if schema is not None:
                validate(schema, values, key)
