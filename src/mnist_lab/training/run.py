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
from lightning.pytorch.utilities.model_helpers import is_overridden
from omegaconf import DictConfig, OmegaConf

from mnist_lab.building import build
from mnist_lab.data.contract import data_facts, loader, tensors
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


def check(cfg: DictConfig) -> L.LightningDataModule:
    """Refuse the settings, or the checkpoint to start from, before anything is written or seeded, and build the
    data module (its own checks across its settings); it reads nothing yet."""
    validate_run(cfg)
    if cfg.get("ckpt_path"):
        read_checkpoint(cfg.ckpt_path)  # refused now, not after the data is read and the Trainer built
    return build(cfg.data)


def prepare(cfg: DictConfig, datamodule: L.LightningDataModule) -> ImageClassifier:
    """Read the data's facts (one training batch), seed, and build the model of them; nothing is trained yet."""
    if cfg.get("torch_threads"):
        torch.set_num_threads(cfg.torch_threads)
    facts = data_facts(datamodule)
    if cfg.get("seed") is not None:  # after the batch read, whose DataLoader draws from the global generator
        L.seed_everything(cfg.seed, workers=True)
    model = build(cfg.model, **{key: value for key, value in facts.items() if cfg.model.get(key) is None})
    model.run_config = OmegaConf.to_container(cfg, resolve=True)  # saved in its checkpoints
    # The summary table rounds to "3.3 M"; the exact count is what the tutorials quote.
    log.info(f"{type(model.net).__name__}: {sum(p.numel() for p in model.net.parameters()):,} parameters")
    return model


def _test(
    cfg: DictConfig, trainer: L.Trainer, model: ImageClassifier, datamodule: L.LightningDataModule, best: Optional[str]
) -> dict[str, float]:
    """Test the ``best`` checkpoint (None: the final weights) when the run tests and the data has a test set.

    Whether it has one is known once the Trainer has set it up for testing (a DataModule written as Lightning's
    docs write one makes its test set in ``setup("test")``): test batches, or none."""
    if not cfg.get("test"):
        return {}
    if is_overridden("test_dataloader", datamodule, L.LightningDataModule):
        trainer.test(model, datamodule=datamodule, ckpt_path=best)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if "test_acc" not in metrics:
        log.info(f"Not tested: {type(datamodule).__name__} has no test data (test_dataloader).")
        return {}
    log.info(f"Test accuracy: {100 * metrics['test_acc']:.2f} % ({best or 'final weights'})")
    return metrics


def reached(model: ImageClassifier) -> dict[str, float]:
    """The best validation accuracy so far, from the model's metric state (restored with a checkpoint): what a
    run that resumed with no epoch left to train reports, as the run before it did."""
    best = float(model.val_acc_best.max_value)
    return {"val_acc_best": best} if math.isfinite(best) else {}


def train(
    cfg: DictConfig,
    callbacks: Sequence[Callback] = (),
    datamodule: Optional[L.LightningDataModule] = None,
    overrides: Optional[Sequence[str]] = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fit, then test the best checkpoint, with the configured callbacks and ``callbacks``; ``datamodule``: the
    one ``check`` built (by default checked and built here); ``overrides``: what the run changed (by default the
    Hydra job's), shown in HPARAMS.

    Returns ``(metrics, objects)``: the run's metrics, and its cfg, datamodule, model, trainer,
    epochs and best checkpoint (None without one).
    """
    datamodule = datamodule or check(cfg)
    model = prepare(cfg, datamodule)
    validates = loader(datamodule, "val") is not None
    trainer = build_trainer(cfg, extra_callbacks=callbacks, validates=validates)
    log_hparams(trainer, run_hparams(cfg, job_overrides() if overrides is None else overrides))
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
    """Milliseconds per image of the trained model on its device, over ``images`` (B, C, H, W) in one batch (best
    of ``repeats``, after a warm-up)."""
    model.eval()
    x = images.to(model.device)
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        model(x)
        if x.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return 1000 * min(times[1:]) / len(x)


def measures(model: ImageClassifier, datamodule: L.LightningDataModule, wanted: Sequence[str] = ()) -> dict[str, float]:
    """The network's parameter count, and, if ``wanted``, its inference milliseconds per image (on up to
    TIMED_IMAGES of the test or validation images)."""
    found: dict[str, float] = {"parameters": sum(p.numel() for p in model.net.parameters())}
    if "ms_per_image" in wanted:
        images = tensors(datamodule, "test", TIMED_IMAGES) or tensors(datamodule, "val", TIMED_IMAGES)
        if images is not None:
            found["ms_per_image"] = inference_ms(model, images[0])
    return found


def _failed(record: RunRecord, err: BaseException, run_dir: Path) -> float:
    """A run's error recorded: NaN for the sweep where it was pruned or, in a sweep, failed; raised otherwise."""
    status = record.fail(err)
    if status == "interrupted":
        stopped_by = stop_signal(err)
        log.info(f"Interrupted ({stopped_by}). Continue with: python train.py resume={run_dir}")
        raise SystemExit(exit_status(stopped_by)) from None  # SIGTERM's SystemExit says 0: success
    if status == "pruned":  # the sweeper reads it in result.json
        log.info(f"Run {run_dir.name} pruned: {err}")
        return math.nan
    if in_sweep():
        log.error("Run %s failed: %s", run_dir.name, f"{type(err).__name__}: {err}")
        return math.nan
    raise err


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
    # Refused alone, a run leaves no record (command_line removes its folder); a sweep lists it.
    datamodule = None if in_sweep() else check(cfg)
    record = RunRecord(run_dir, job_overrides(), resumed=resumed)
    try:
        # HPARAMS show what the run was started with: a resumed run's command line says only resume=<run>.
        metrics, objects = train(cfg, datamodule=datamodule, overrides=record.record["overrides"])
    except BaseException as err:
        return _failed(record, err, run_dir)
    metrics |= measures(objects["model"], objects["datamodule"], wanted=sweep_objectives())
    record.finish(metrics, objects["epochs"], objects["checkpoint"])
    return metrics.get(objective)
