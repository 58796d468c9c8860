"""Every command that the README and docs/ show composes as written: its script's config takes its overrides."""

from __future__ import annotations

import re
import shlex

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from support import ROOT, compose_config

# The pages that add a model or a dataset: their commands compose once their files are written, which
# test_own_model_and_dataset does, running them.
FOLLOWED = {"own_model.md", "own_dataset.md"}
PAGES = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").glob("*.md") if p.name not in FOLLOWED)]
# `python train.py ...` up to where the command ends: a backtick, a comment, another command, the line's end.
COMMAND = re.compile(r"python (train|eval|predict|serve|export)\.py((?:[^`#&|\n\\\\]|\\\\.)*)")
NOT_OVERRIDES = {"-m", "--multirun", "--cfg", "job"}
PLACEHOLDER = re.compile(r"<([\w.]+)>")  # outputs/runs/<run>: what the reader fills in


def commands() -> list[tuple[str, str, list[str]]]:
    found = []
    for page in PAGES:
        for script, args in COMMAND.findall(page.read_text()):
            words = [w for w in shlex.split(PLACEHOLDER.sub(r"\1", args)) if w not in NOT_OVERRIDES]
            found.append((page.name, script, words))
    return found


def one_run(override: str) -> str:
    """A sweep's override as its first value (``lr=1e-3,3e-3`` -> ``lr=1e-3``); others as they are."""
    parsed = OverridesParser.create().parse_override(override)
    if not parsed.is_sweep_override() or parsed.value_type is None:
        return override
    return f"{parsed.get_key_element()}={next(iter(parsed.sweep_string_iterator()))}"


def test_the_pages_show_commands():
    assert {script for _, script, _ in commands()} == {"train", "eval", "predict", "serve", "export"}


@pytest.mark.slow  # some 60 configs composed: 20 s
@pytest.mark.parametrize("page, script, overrides", commands(), ids=lambda v: v if isinstance(v, str) else None)
def test_each_command_of_the_docs_composes(page, script, overrides):
    if any(o.partition("=")[0] in ("sweep", "hydra/sweeper") and "optuna" in o for o in overrides):
        pytest.importorskip(
            "optuna_integration", reason='sweep=optuna needs the optuna extra: pip install -e ".[optuna]"'
        )
    compose_config(*[one_run(o) for o in overrides], config_name=script, hydra_keys=True)
