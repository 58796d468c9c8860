"""The checks that span config groups, run before anything is built.

Each object checks its own arguments where it is built (the networks their dropout, the
DataModule its sizes), which is still before any data is read.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from mnist_lab.errors import check
from mnist_lab.hardware import resolve_accelerator
from mnist_lab.targets import fits
from mnist_lab.training.run_folder import RESULTS

PRECISIONS = ("32-true", "bf16-mixed", "bf16-true", "16-mixed", "16-true", "64-true")


def validate(cfg: DictConfig) -> None:
    """Refuse impossible training settings before any work is done."""
    _check_run_keys(cfg)
    _check_rates(cfg.model)
    epochs = cfg.trainer.get("max_epochs")
    if isinstance(epochs, int) and epochs != -1:  # of another type: refused where the Trainer is built
        check(epochs >= 1, "trainer.max_epochs", epochs, "it must be >= 1 (or -1 with trainer.max_steps)")
    if "train_csv" in cfg.data and not cfg.data.train_csv:
        check(not cfg.data.get("test_csv"), "data.train_csv", None, "training on CSVs needs a labelled training CSV")
    strategy = str(cfg.trainer.get("strategy", "auto"))
    if cfg.get("test"):
        # A spawned fit leaves the main process without the trained data module and state to test.
        check(
            "spawn" not in strategy,
            "trainer.strategy",
            strategy,
            "it cannot test after fit; use trainer=ddp, or test=false",
        )
    _check_precision(cfg.trainer)


def _check_run_keys(cfg: DictConfig) -> None:
    """The keys of conf/train.yaml itself, which no built object checks."""
    seed, threads = cfg.get("seed"), cfg.get("torch_threads")
    check(
        seed is None or (fits(seed, [int]) and 0 <= seed < 2**32),
        "seed",
        seed,
        "it must be an integer in [0, 2**32) or null",
    )
    check(
        threads is None or (fits(threads, [int]) and threads >= 1),
        "torch_threads",
        threads,
        "it must be an integer >= 1 or null",
    )
    check(fits(cfg.get("test"), [bool]), "test", cfg.get("test"), "it must be true or false")
    metric = cfg.get("optimized_metric")
    check(metric in RESULTS, "optimized_metric", metric, f"choose one of {', '.join(RESULTS)}")
    for key in ("resume", "ckpt_path"):
        value = cfg.get(key)
        check(fits(value, [str, type(None)]), key, value, "it must be a path or null")


def _check_rates(model: DictConfig) -> None:
    for section, name in ((model.optimizer, "model.optimizer"), (model.get("scheduler") or {}, "model.scheduler")):
        for key in ("lr", "max_lr"):
            value = section.get(key)
            if value is not None:
                check(fits(value, [float]) and value > 0, f"{name}.{key}", section[key], "it must be > 0")


def _check_precision(trainer: DictConfig) -> None:
    precision = str(trainer.get("precision", "32-true"))
    check(precision in PRECISIONS, "trainer.precision", precision, f"choose one of {', '.join(PRECISIONS)}")
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
        check(False, "trainer.precision", precision, f"fp16 needs a GPU; on {device} use bf16-mixed or 32-true")
