"""What the machine can do: the device a run trains on, the fastest precision there, and an environment fix."""

from __future__ import annotations

import ctypes
import os
from functools import lru_cache
from pathlib import Path

import torch
from omegaconf import DictConfig


@lru_cache
def cpu_has_bf16() -> bool:
    """True where the CPU multiplies bf16 natively (AVX-512 BF16 or AMX); elsewhere bf16 is emulated and slow."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_accelerator(accelerator: str) -> str:
    """The device type a Trainer ``accelerator`` setting means here: cuda or what was asked for."""
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
    the driver every check tries to load libnvidia-ml again, and Adam/AdamW check on every step
    (docs/benchmarks.md). Without the driver the plain check cannot initialise CUDA either, so
    nothing is lost.
    """
    if os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") == "1":
        try:
            ctypes.CDLL("libnvidia-ml.so.1")
        except OSError:
            del os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"]


def gpu_for_job(trainer: DictConfig, job_num: int, gpus: int) -> None:
    """Side-by-side jobs on a machine with ``gpus`` GPUs: job k trains on GPU k mod gpus, not all on GPU 0.

    Lightning's ``devices=[i]`` rather than CUDA_VISIBLE_DEVICES: joblib reuses its worker processes,
    and in a worker that ran an earlier job CUDA has started already and no longer reads that variable.
    """
    single = trainer.get("devices", "auto") in (1, "auto")
    if gpus > 1 and single and resolve_accelerator(str(trainer.get("accelerator", "auto"))) == "cuda":
        trainer.devices = [job_num % gpus]
