"""The run's own settings (the top-level keys of conf/train.yaml) and the rules that span config groups.

Each built object's arguments are validated here too, against its class, before anything is seeded,
built or read; ``building.build`` checks them again where they are built.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

import torch
from omegaconf import DictConfig, open_dict
from pydantic import ConfigDict, NonNegativeInt, PositiveInt
from typing_extensions import TypedDict

from mnist_lab.errors import ConfigError, check
from mnist_lab.hardware import resolve_accelerator
from mnist_lab.logs import get_logger
from mnist_lab.training.run_folder import RESULTS
from mnist_lab.validation import Seed, check_config, signature_schema

log = get_logger(__name__)


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
    fit_batch_size(cfg.data)
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


def fit_batch_size(data: DictConfig) -> None:
    """A model's YAML sets ``data.batch_size`` (conf/model/*.yaml: its batch, tuned with its learning rate). A
    DataModule that takes no batch_size batches its own way: the key is left out, and one line says so."""
    schema = signature_schema(data.get("_target_", ""))
    if schema is None or "batch_size" not in data:  # no schema: nothing known, nothing left out
        return
    if "batch_size" not in schema.__annotations__ and schema.__pydantic_config__["extra"] == "forbid":
        log.info(f"{data._target_} takes no batch_size: data.batch_size={data.batch_size} is left out")
        with open_dict(data):
            del data["batch_size"]


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
