"""Config resolvers and the checks that run before any data is loaded."""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

PRECISIONS = ("32-true", "bf16-mixed", "bf16-true", "16-mixed", "16-true", "64-true")


class ConfigError(ValueError):
    """A configuration value is not allowed; the message names the key, the value and what is allowed."""


@lru_cache
def cpu_has_bf16() -> bool:
    """True where the CPU multiplies bf16 natively (AVX-512 BF16 or AMX); elsewhere bf16 is emulated and slow."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_accelerator(accelerator: str) -> str:
    if accelerator in ("auto", "gpu", "cuda"):
        return "cuda" if torch.cuda.is_available() else "cpu" if accelerator == "auto" else "cuda"
    return accelerator


def auto_precision(accelerator: str = "auto") -> str:
    """The fastest precision that keeps accuracy: bf16 autocast where the hardware has bf16, else fp32."""
    if resolve_accelerator(accelerator) == "cuda":
        return "bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "32-true"
    return "bf16-mixed" if cpu_has_bf16() else "32-true"


def skip_nvml_check_without_driver() -> None:
    """Let ``torch.cuda.is_available()`` skip NVML where there is no NVIDIA driver.

    Lightning sets ``PYTORCH_NVML_BASED_CUDA_CHECK=1`` (a fork-safe check through NVML). Without
    the driver every check tries to load libnvidia-ml again, and Adam/AdamW check on every step:
    ~0.2 ms a step on this CPU, 5 % of an MLP epoch. Without the driver the plain check cannot
    initialise CUDA either, so nothing is lost.
    """
    if os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") == "1":
        try:
            ctypes.CDLL("libnvidia-ml.so.1")
        except OSError:
            del os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"]


def config_subdir(resume: str | None) -> str:
    """Where Hydra saves a run's config: a resumed run keeps the original and adds its own beside it."""
    return f".hydra/resumed_{datetime.now():%Y-%m-%d_%H-%M-%S-%f}" if resume else ".hydra"


# Overrides that do not change what a run learns, left out of its folder name.
_NOT_IN_NAME = ("hydra.", "callbacks.", "trainer.limit_", "sweep", "launcher", "debug")


def run_dirname(overrides: list[str]) -> str:
    """A sweep run's folder name from its overrides: ``dropout=0.5,lr=0.001``.

    Derived from the parameters alone, so running the sweep again finds the same folders.
    Keys are shortened to their last part unless that is ambiguous; very long names are cut and hashed.
    """
    items = sorted(
        (key.lstrip("+~"), value)
        for key, _, value in (o.partition("=") for o in overrides)
        if not key.lstrip("+~").startswith(_NOT_IN_NAME)
    )
    short = [key.rsplit(".", 1)[-1] for key, _ in items]
    name = ",".join(f"{s if short.count(s) == 1 else k}={v}" for s, (k, v) in zip(short, items))
    name = name.replace("/", "_").replace(" ", "") or "defaults"
    if len(name) > 150:
        name = f"{name[:140]}_{hashlib.sha1(name.encode()).hexdigest()[:8]}"
    return name


def register_resolvers() -> None:
    OmegaConf.register_new_resolver("auto_precision", auto_precision, replace=True)
    OmegaConf.register_new_resolver("or", lambda *values: next((v for v in values if v), values[-1]), replace=True)
    OmegaConf.register_new_resolver("config_subdir", config_subdir, replace=True)
    OmegaConf.register_new_resolver("run_dirname", run_dirname, replace=True)
    OmegaConf.register_new_resolver("threads_per_job", lambda jobs: max(1, (os.cpu_count() or 1) // int(jobs)), replace=True)


def _check(ok: bool, key: str, value: object, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value} is not allowed: {allowed}.")


def validate(cfg: DictConfig) -> None:
    """Refuse impossible settings before any data is loaded or any work is done."""
    net, opt, data, trainer = cfg.model.net, cfg.model.optimizer, cfg.data, cfg.trainer
    if "dropout" in net:
        _check(0 <= net.dropout < 1, "model.net.dropout", net.dropout, "it must be in [0, 1)")
    for key in ("lr", "max_lr"):
        for section, name in ((opt, "model.optimizer"), (cfg.model.get("scheduler") or {}, "model.scheduler")):
            if section.get(key) is not None:
                _check(section[key] > 0, f"{name}.{key}", section[key], "it must be > 0")
    _check(data.batch_size >= 1, "data.batch_size", data.batch_size, "it must be >= 1")
    _check(data.val_size >= 0, "data.val_size", data.val_size, "it must be >= 0 (0 disables validation)")
    if "train_csv" in data and not data.train_csv:
        _check(not data.get("test_csv"), "data.train_csv", None, "training on CSVs needs a labelled training CSV")
    if not data.get("train_csv"):
        _check(data.val_size < 60_000, "data.val_size", data.val_size, "it must be smaller than the 60000 training images")
    epochs = trainer.get("max_epochs")
    if epochs is not None and epochs != -1:
        _check(epochs >= 1, "trainer.max_epochs", epochs, "it must be >= 1 (or -1 with trainer.max_steps)")
    precision = str(trainer.get("precision", "32-true"))
    _check(precision in PRECISIONS, "trainer.precision", precision, f"choose one of {', '.join(PRECISIONS)}")
    device = resolve_accelerator(str(trainer.get("accelerator", "auto")))
    if device == "cuda":
        _check(torch.cuda.is_available(), "trainer.accelerator", trainer.accelerator, "no CUDA GPU is visible here; use trainer=cpu")
        if precision.startswith("bf16"):
            _check(torch.cuda.is_bf16_supported(), "trainer.precision", precision, "this GPU has no bf16; use 16-mixed or 32-true")
    elif precision.startswith("16"):
        _check(False, "trainer.precision", precision, f"fp16 needs a GPU; on {device} use bf16-mixed or 32-true")


def in_sweep() -> bool:
    """True inside a Hydra multirun job."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def friendly_errors(main: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """A single run stops on a known problem with one line, not a traceback; sweeps record it instead."""
    from mnist_lab.data import DataError
    from mnist_lab.module import CheckpointError

    @functools.wraps(main)
    def wrapper(cfg: DictConfig) -> Any:
        try:
            return main(cfg)
        except (ConfigError, DataError, CheckpointError, FloatingPointError) as err:
            if in_sweep():
                raise
            raise SystemExit(f"error: {err}") from None

    return wrapper


def require(cfg: DictConfig, key: str, example: str) -> Any:
    if OmegaConf.is_missing(cfg, key) or cfg.get(key) in (None, ""):
        raise ConfigError(f"{key} is missing: e.g. {example}")
    return cfg[key]


def load_run_config(run_dir: str | Path) -> DictConfig:
    """The config an earlier run was started with (its .hydra/config.yaml), to continue it."""
    path = Path(run_dir) / ".hydra" / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"resume={run_dir} is not a run folder: it has no .hydra/config.yaml (look in outputs/runs/).")
    cfg = OmegaConf.load(path)
    cfg.resume = str(run_dir)
    return cfg
