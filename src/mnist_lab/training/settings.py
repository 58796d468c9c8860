"""The run's own settings (the top-level keys of conf/train.yaml) and the rules that span config groups.

Each built object's arguments are validated here too, against its class, before anything is seeded,
built or read; ``building.build`` checks them again where they are built.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

import torch
from omegaconf import DictConfig
from pydantic import ConfigDict, NonNegativeInt, PositiveInt
from typing_extensions import TypedDict

from mnist_lab.errors import ConfigError, check
from mnist_lab.hardware import resolve_accelerator
from mnist_lab.training.run_folder import RESULTS
from mnist_lab.validation import Seed, check_config


class RunSettings(TypedDict, total=False):
    """conf/train.yaml's top-level keys: any other is refused (``+foo=1`` would sit in the config unread).
    None is required: an older run's config, resumed, may lack a newer key."""

    __pydantic_config__ = ConfigDict(strict=True, extra="forbid")  # type: ignore[misc]

    seed: Optional[Seed]
    torch_threads: Optional[PositiveInt]
    test: bool
    optimized_metric: Literal[RESULTS]  # type: ignore[valid-type]
    resume: Optional[str]
    ckpt_path: Optional[str]
    trial: Optional[NonNegativeInt]  # the Optuna trial's number
    output_dir: str
    task_name: str
    # What sweep=optuna searches for this model, in Hydra's sweep syntax (set in the model's YAML).
    search_space: Optional[dict[str, str | int | float]]
    # The config groups: each object's arguments are checked against its class (check_config).
    data: Any
    model: Any
    trainer: Any
    logger: Any
    callbacks: Any


def validate_run(cfg: DictConfig) -> None:
    """Refuse impossible training settings before any work is done."""
    check_config(RunSettings, cfg)
    strategy = str(cfg.trainer.get("strategy", "auto"))
    if cfg.get("test"):
        # A spawned fit leaves the main process without the trained data module and state to test.
        check(
            "spawn" not in strategy,
            "trainer.strategy",
            strategy,
            "it cannot test after fit; use trainer=ddp, or test=false",
        )
    _check_device(cfg.trainer)


def _check_device(trainer: DictConfig) -> None:
    """The accelerator and precision asked for exist here (the Trainer's signature allows the precision's name)."""
    precision = str(trainer.get("precision", "32-true"))
    device = resolve_accelerator(str(trainer.get("accelerator", "auto")))
    if device == "cuda":
        check(
            torch.cuda.is_available(),
            "trainer.accelerator",
            trainer.accelerator,
            "no CUDA GPU is visible here; use trainer=cpu",
        )
        if precision.startswith("bf16"):
            check(
                torch.cuda.is_bf16_supported(),
                "trainer.precision",
                precision,
                "this GPU has no bf16; use 16-mixed or 32-true",
            )
    elif precision.startswith("16"):
        raise ConfigError(
            f"trainer.precision={precision} is not allowed: fp16 needs a GPU; on {device} use bf16-mixed or 32-true."
        )
