"""The checks that span config groups, run before anything is built.

Each object checks its own arguments where it is built (the networks their dropout, the
DataModule its sizes), which is still before any data is read.
"""

from __future__ import annotations

from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from mnist_lab.errors import ConfigError, check
from mnist_lab.hardware import resolve_accelerator

PRECISIONS = ("32-true", "bf16-mixed", "bf16-true", "16-mixed", "16-true", "64-true")


def validate(cfg: DictConfig) -> None:
    """Refuse impossible training settings before any work is done."""
    _check_rates(cfg.model)
    epochs = cfg.trainer.get("max_epochs")
    if epochs is not None and epochs != -1:
        check(epochs >= 1, "trainer.max_epochs", epochs, "it must be >= 1 (or -1 with trainer.max_steps)")
    if "train_csv" in cfg.data and not cfg.data.train_csv:
        check(not cfg.data.get("test_csv"), "data.train_csv", None, "training on CSVs needs a labelled training CSV")
    strategy = str(cfg.trainer.get("strategy", "auto"))
    if cfg.get("test"):
        # A spawned fit leaves the main process without the trained data module and state to test.
        check("spawn" not in strategy, "trainer.strategy", strategy, "it cannot test after fit; use trainer=ddp, or test=false")
    _check_precision(cfg.trainer)


def _check_rates(model: DictConfig) -> None:
    for section, name in ((model.optimizer, "model.optimizer"), (model.get("scheduler") or {}, "model.scheduler")):
        for key in ("lr", "max_lr"):
            if section.get(key) is not None:
                check(section[key] > 0, f"{name}.{key}", section[key], "it must be > 0")


def _check_precision(trainer: DictConfig) -> None:
    precision = str(trainer.get("precision", "32-true"))
    check(precision in PRECISIONS, "trainer.precision", precision, f"choose one of {', '.join(PRECISIONS)}")
    device = resolve_accelerator(str(trainer.get("accelerator", "auto")))
    if device == "cuda":
        check(torch.cuda.is_available(), "trainer.accelerator", trainer.accelerator, "no CUDA GPU is visible here; use trainer=cpu")
        if precision.startswith("bf16"):
            check(torch.cuda.is_bf16_supported(), "trainer.precision", precision, "this GPU has no bf16; use 16-mixed or 32-true")
    elif precision.startswith("16"):
        check(False, "trainer.precision", precision, f"fp16 needs a GPU; on {device} use bf16-mixed or 32-true")


def require(cfg: DictConfig, key: str, example: str) -> Any:
    """``cfg[key]``, or a ConfigError showing ``example`` when it is not given."""
    if OmegaConf.is_missing(cfg, key) or cfg.get(key) in (None, ""):
        raise ConfigError(f"{key} is missing: e.g. {example}")
    return cfg[key]
