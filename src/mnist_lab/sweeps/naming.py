"""A sweep run's folder name, made from its overrides, so that running the sweep again finds the same folders."""

from __future__ import annotations

import hashlib

# Overrides that do not change what a run learns, left out of its folder name.
# trial: the Optuna trial number, which a killed sweep's retry of the same parameters does not share.
# logger: where a run is logged to does not change what it learns; search_space: what a search explores.
NOT_IN_NAME = (
    "hydra.",
    "callbacks.",
    "trainer.limit_",
    "sweep",
    "launcher",
    "debug",
    "trial",
    "logger",
    "search_space",
)
MAX_NAME = 150  # characters; longer folder names are cut and end in a hash of the whole
SHOWN_DIGITS = 4  # significant digits of a float in a folder name


def short_value(value: str) -> str:
    """A float shown to SHOWN_DIGITS significant digits; anything else (and a float that short already) as given."""
    try:
        number = float(value)
    except ValueError:
        return value
    shown = f"{number:.{SHOWN_DIGITS}g}"
    return value if float(shown) == number else shown


def _hash(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def names_run(key: str) -> bool:
    """Whether an override's key (``+``/``~`` prefixes allowed) is part of what a run is named and summarised by."""
    return not key.lstrip("+~").startswith(NOT_IN_NAME)


def run_dirname(overrides: list[str]) -> str:
    """A sweep run's folder name from its overrides: ``dropout=0.5,lr=0.001``.

    Derived from the parameters alone, so running the sweep again finds the same folders.
    Keys are shortened to their last part unless that is ambiguous; floats are shown to
    SHOWN_DIGITS digits, and a name that rounding shortened ends in a hash of the exact values,
    so that two runs never share a folder.
    """
    items = sorted(
        (key.lstrip("+~"), value) for key, _, value in (o.partition("=") for o in overrides) if names_run(key)
    )
    short = [key.rsplit(".", 1)[-1] for key, _ in items]
    labels = [s if short.count(s) == 1 else key for s, (key, _) in zip(short, items)]
    exact = ",".join(f"{label}={value}" for label, (_, value) in zip(labels, items))
    name = ",".join(f"{label}={short_value(value)}" for label, (_, value) in zip(labels, items))
    name = name.replace("/", "_").replace(" ", "") or "defaults"
    if any(short_value(value) != value for _, value in items):
        name = f"{name}_{_hash(exact)}"
    if len(name) > MAX_NAME:
        name = f"{name[: MAX_NAME - 10]}_{_hash(name)}"
    return name
