"""The checks that span config groups, run before anything is built.

Each object checks its own arguments where it is built (the networks their dropout, the
DataModule its sizes), which is still before any data is read.
"""

from __future__ import annotations

from typing import Callable

import torch
from omegaconf import DictConfig, OmegaConf

from mnist_lab.errors import check
from mnist_lab.hardware import resolve_accelerator
from mnist_lab.targets import fits
from mnist_lab.training.run_folder import RESULTS

PRECISIONS = ("32-true", "bf16-mixed", "bf16-true", "16-mixed", "16-true", "64-true")
SEEDS = "an integer in [0, 2**32)"
# Numbers that no object bounds when it is built: torch builds the optimizer and schedule only
# after the data is read, and Lightning takes these silently. key -> (allowed?, what is allowed).
LIMITS: dict[str, tuple[Callable[[float], bool], str]] = {
    "model.optimizer.lr": (lambda v: v > 0, "it must be > 0"),
    "model.scheduler.max_lr": (lambda v: v > 0, "it must be > 0"),
    "model.optimizer.weight_decay": (lambda v: v >= 0, "it must be >= 0"),
    "model.optimizer.momentum": (lambda v: 0 <= v < 1, "it must be in [0, 1)"),
    "model.scheduler.pct_start": (lambda v: 0 < v < 1, "it must be in (0, 1)"),
    "model.label_smoothing": (lambda v: 0 <= v < 1, "it must be in [0, 1)"),
    "model.std": (lambda v: v > 0, "it must be > 0"),
    "data.seed": (lambda v: 0 <= v < 2**32 and v == int(v), f"it must be {SEEDS} or null"),
    "data.split_seed": (lambda v: 0 <= v < 2**32 and v == int(v), f"it must be {SEEDS}"),
    "trainer.log_every_n_steps": (lambda v: v >= 1, "it must be >= 1"),
    "trainer.check_val_every_n_epoch": (lambda v: v >= 1, "it must be >= 1 or null"),
    "trainer.gradient_clip_val": (lambda v: v >= 0, "it must be >= 0 or null"),
    "callbacks.model_summary.max_depth": (lambda v: v >= -1, "it must be >= -1 (-1: every layer)"),
    "callbacks.progress_bar.refresh_rate": (lambda v: v >= 0, "it must be >= 0 (0: no bar)"),
    "callbacks.test_figures.max_images": (lambda v: v >= 0, "it must be >= 0"),
    "callbacks.weight_histograms.every_n_epochs": (lambda v: v >= 0, "it must be >= 0 (0: never)"),
}


def validate(cfg: DictConfig) -> None:
    """Refuse impossible training settings before any work is done."""
    _check_run_keys(cfg)
    _check_limits(cfg)
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
    check(seed is None or (fits(seed, [int]) and 0 <= seed < 2**32), "seed", seed, f"it must be {SEEDS} or null")
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
    trial = cfg.get("trial")
    check(trial is None or (fits(trial, [int]) and trial >= 0), "trial", trial, "it must be a trial number or null")
    for key in ("output_dir", "task_name"):
        check(fits(cfg.get(key), [str]), key, cfg.get(key), "it must be a string")


def _check_limits(cfg: DictConfig) -> None:
    for key, (allowed, text) in LIMITS.items():
        value = OmegaConf.select(cfg, key)
        if value is not None:
            check(fits(value, [float]) and allowed(value), key, value, text)


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
