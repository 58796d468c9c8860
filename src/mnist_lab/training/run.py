"""What ``python train.py`` does with its composed config: fit, test, and keep the run's record."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from mnist_lab.building import build
from mnist_lab.data.datamodule import ImageDataModule
from mnist_lab.data.mnist import to_unit
from mnist_lab.errors import ConfigError
from mnist_lab.hardware import gpu_for_job
from mnist_lab.hydra_job import in_sweep, job_overrides, parallel_job
from mnist_lab.logs import get_logger
from mnist_lab.models.classifier import ImageClassifier, read_checkpoint
from mnist_lab.training.builders import build_trainer
from mnist_lab.training.hparams import log_hparams, run_hparams
from mnist_lab.training.run_folder import (
    RESULT,
    RunRecord,
    exit_status,
    finished_result,
    load_run_config,
    resume_checkpoint,
    stop_signal,
)
from mnist_lab.training.settings import validate_run
from mnist_lab.training.wandb_mode import finish_wandb

log = get_logger(__name__)

TIMED_IMAGES = 1000  # images a run's inference speed is timed on (ms_per_image)


def check(cfg: DictConfig) -> None:
    """Refuse the settings, or the checkpoint to start from, before anything is written, seeded or built."""
    validate_run(cfg)
    build(cfg.data)  # the data module's own checks across its settings (val_size, fold); it reads nothing yet
    if cfg.get("ckpt_path"):
        read_checkpoint(cfg.ckpt_path)  # refused now, not after the data is read and the Trainer built


def data_facts(model: DictConfig, datamodule: ImageDataModule) -> dict[str, Any]:
    """What the model takes from the data where its config is silent: the class names, image size, mean and std."""
    facts = {key: getattr(datamodule, key) for key in ("classes", "image_size", "mean", "std")}
    return {key: value for key, value in facts.items() if model.get(key) is None}


def prepare(cfg: DictConfig, checked: bool = False) -> tuple[ImageDataModule, ImageClassifier]:
    """Check the settings (unless ``checked`` already), seed, and build the data and the model; nothing is read or
    trained yet."""
    if not checked:
        check(cfg)
    if cfg.get("torch_threads"):
        torch.set_num_threads(cfg.torch_threads)
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    datamodule = build(cfg.data)
    model = build(cfg.model, **data_facts(cfg.model, datamodule))
    model.run_config = OmegaConf.to_container(cfg, resolve=True)  # saved in its checkpoints
    # The summary table rounds to "3.3 M"; the exact count is what the tutorials quote.
    log.info(f"{type(model.net).__name__}: {sum(p.numel() for p in model.net.parameters()):,} parameters")
    return datamodule, model


def _test(
    cfg: DictConfig, trainer: L.Trainer, model: ImageClassifier, datamodule: ImageDataModule, best: Optional[str]
) -> dict[str, float]:
    """Test the ``best`` checkpoint (None: the final weights) when the run tests and has a labelled test set."""
    if not cfg.get("test"):
        return {}
    if datamodule.test_set is None:
        log.info("Not tested: there is no labelled test set (data.test_csv with a 'label' column).")
        return {}
    trainer.test(model, datamodule=datamodule, ckpt_path=best)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    log.info(f"Test accuracy: {100 * metrics['test_acc']:.2f} % ({best or 'final weights'})")
    return metrics


def reached(model: ImageClassifier) -> dict[str, float]:
    """The best validation accuracy so far, from the model's metric state (restored with a checkpoint): what a
    run that resumed with no epoch left to train reports, as the run before it did."""
    best = float(model.val_acc_best.max_value)
    return {"val_acc_best": best} if math.isfinite(best) else {}


def train(
    cfg: DictConfig, callbacks: Sequence[Callback] = (), checked: bool = False
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fit, then test the best checkpoint, with the configured callbacks and ``callbacks``.

    Returns ``(metrics, objects)``: the run's metrics, and its cfg, datamodule, model, trainer,
    epochs and best checkpoint (None without one).
    """
    datamodule, model = prepare(cfg, checked)
    trainer = build_trainer(cfg, extra_callbacks=callbacks)
    log_hparams(trainer, run_hparams(cfg))
    ckpt_path = cfg.get("ckpt_path") or resume_checkpoint(Path(cfg.output_dir))
    if ckpt_path:
        log.info(f"Continuing from {ckpt_path}")
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
        metrics = {**reached(model), **{k: float(v) for k, v in trainer.callback_metrics.items()}}
        best = (trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else "") or None
        metrics.update(_test(cfg, trainer, model, datamodule, best))
    except BaseException:
        finish_wandb(trainer, failed=True)
        raise
    finish_wandb(trainer)
    objects = {"cfg": cfg, "datamodule": datamodule, "model": model, "trainer": trainer}
    return metrics, {**objects, "epochs": trainer.current_epoch, "checkpoint": best}


def sweep_objectives() -> list[str]:
    """What the running search optimises (``hydra.sweeper.objectives``); nothing outside a search."""
    sweeper = HydraConfig.get().sweeper if HydraConfig.initialized() else {}
    return list(sweeper.get("objectives") or [])


@torch.inference_mode()
def inference_ms(model: ImageClassifier, images: torch.Tensor, repeats: int = 3) -> float:
    """Milliseconds per image of the trained model on its device, over ``images`` in one batch (best of
    ``repeats``, after a warm-up)."""
    model.eval()
    x = to_unit(images.to(model.device).unsqueeze(1))
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        model(x)
        if x.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return 1000 * min(times[1:]) / len(x)


def measures(model: ImageClassifier, datamodule: ImageDataModule, wanted: Sequence[str] = ()) -> dict[str, float]:
    """The network's parameter count, and, if ``wanted``, its inference milliseconds per image (on up to
    TIMED_IMAGES of the test or validation images)."""
    found: dict[str, float] = {"parameters": sum(p.numel() for p in model.net.parameters())}
    images = datamodule.test_set or datamodule.val_set
    if "ms_per_image" in wanted and images is not None:
        found["ms_per_image"] = inference_ms(model, images.images[:TIMED_IMAGES])
    return found


def run(cfg: DictConfig) -> Optional[float]:
    """train() for one run of train.py: skips a finished run, records result.json, returns the objective.

    In a sweep a failing run is recorded as failed and returns NaN, so the other runs go on and
    the sweep's summary lists it; alone, the error propagates.
    """
    resumed = bool(cfg.get("resume"))
    if resumed:
        cfg = load_run_config(cfg.resume)  # its output_dir is the resumed folder: Hydra runs there
    if parallel_job():
        gpu_for_job(cfg.trainer, HydraConfig.get().job.num, torch.cuda.device_count())
    run_dir, objective = Path(cfg.output_dir), cfg.get("optimized_metric")
    done = finished_result(run_dir)
    if done:
        if not in_sweep():
            raise ConfigError(
                f"{run_dir} already holds a finished run ({RESULT}); start a new run instead of overwriting it."
            )
        log.info(f"Skipping {run_dir.name}: it finished before ({RESULT}).")
        return done.get(objective)
    if rank_zero_only.rank != 0:  # a DDP worker re-launched by Lightning: rank 0 keeps the records
        return train(cfg)[0].get(objective)
    checked = not in_sweep()
    if checked:  # refused alone, it leaves no record (command_line removes its folder); a sweep lists it
        check(cfg)
    record = RunRecord(run_dir, job_overrides(), resumed=resumed)
    try:
        metrics, objects = train(cfg, checked=checked)
    except BaseException as err:
        status = record.fail(err)
        if status == "interrupted":
            stopped_by = stop_signal(err)
            log.info(f"Interrupted ({stopped_by}). Continue with: python train.py resume={run_dir}")
            raise SystemExit(exit_status(stopped_by)) from None  # SIGTERM's SystemExit says 0: success
        elif status == "pruned":  # the sweeper reads it in result.json
            log.info(f"Run {run_dir.name} pruned: {err}")
            return math.nan
        elif in_sweep():
            log.error("Run %s failed: %s", run_dir.name, f"{type(err).__name__}: {err}")
            return math.nan
        raise
    metrics |= measures(objects["model"], objects["datamodule"], wanted=sweep_objectives())
    record.finish(metrics, objects["epochs"], objects["checkpoint"])
    return metrics.get(objective)
