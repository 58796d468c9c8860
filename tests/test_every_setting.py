"""Every setting of every model's composed config, given a value of the wrong type or out of range, is refused
in one line naming it, before any data is read: not a traceback, not a silently accepted value."""

from __future__ import annotations

from typing import Any, Iterator

import pytest
from omegaconf import DictConfig, OmegaConf

from mnist_lab.errors import UserError
from mnist_lab.training.builders import build_trainer
from mnist_lab.training.run import check
from support import MODELS

# Values no setting of that kind takes, by the kind of its default.
WRONG = {
    bool: ["maybe", 3],
    int: ["abc", -7],
    float: ["abc", -7],
    str: [[1, 2]],
    list: ["abc", 7],
    type(None): [[1, 2]],
}
# Where one of those is a fine value after all.
FINE = {("model.mean", "-7")}
# Read by run(), not by check(): test_reliability refuses a folder that is not a run.
ELSEWHERE = {"resume"}


def settings(node: DictConfig, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(key, value) of every leaf; Hydra's own keys (_target_, _partial_, _recursive_) are not settings."""
    for key in node:
        if str(key).startswith("_") or f"{prefix}{key}" == "search_space":  # the sweeper's (sweeps.study)
            continue
        value = node[key]
        if isinstance(value, DictConfig) and len(value):
            yield from settings(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", OmegaConf.to_object(value) if isinstance(value, DictConfig) else value


@pytest.mark.parametrize("model", MODELS)
def test_every_setting_of_the_wrong_kind_is_refused_in_one_line(make_cfg, model):
    base = make_cfg(f"model={model}")
    OmegaConf.resolve(base)
    problems, tried = [], 0
    for key, value in settings(base):
        kind = list if isinstance(value, (list, tuple)) else type(value)
        for bad in WRONG.get(kind, []):
            if key in ELSEWHERE or (key, repr(bad)) in FINE:
                continue
            cfg = base.copy()
            OmegaConf.update(cfg, key, bad, merge=False)
            tried += 1
            try:
                check(cfg)
                build_trainer(cfg)
            except UserError as err:
                if key not in str(err) or "\n" in str(err):
                    problems.append(f"{key}={bad!r}: the message does not name it in one line: {err}")
            except Exception as err:  # noqa: BLE001 - what the test is looking for
                problems.append(f"{key}={bad!r}: {type(err).__name__}: {err}")
            else:
                problems.append(f"{key}={bad!r}: accepted")
    assert tried > 60
    assert not problems, "\n".join(problems)
