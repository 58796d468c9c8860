"""What ``python train.py`` does with its composed config."""

from __future__ import annotations

import logging
import math
import time
import traceback
from pathlib import Path
from typing import Optional

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig

from mnist_lab.callbacks import log_hparams
from mnist_lab.config import ConfigError, in_sweep, load_run_config, skip_nvml_check_without_driver, validate
from mnist_lab.quiet import hide_known_noise
from mnist_lab.sweep import RESULT, finished_result, write_json

log = logging.getLogger(__name__)


def build_trainer(cfg: DictConfig) -> L.Trainer:
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    if cfg.data.val_size == 0:
        # Nothing to monitor without validation: keep the last checkpoint instead of the best.
        for cb in callbacks:
            if isinstance(cb, ModelCheckpoint):
                cb.monitor, cb.save_top_k = None, 1
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c]
    if not loggers:  # logger=[]: Lightning refuses a learning-rate monitor with nothing to log to
        callbacks = [cb for cb in callbacks if not isinstance(cb, LearningRateMonitor)]
    skip_nvml_check_without_driver()
    hide_known_noise()
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)


def _name(target: str) -> str:
    return target.rsplit(".", 1)[-1]


def run_hparams(cfg: DictConfig) -> dict:
    """The flat, comparable settings of a run, for TensorBoard's HPARAMS tab."""
    model = cfg.model
    return {
        "model": _name(model.net._target_),
        "optimizer": _name(model.optimizer._target_),
        "lr": model.optimizer.lr,
        "weight_decay": model.optimizer.get("weight_decay", 0.0),
        "scheduler": _name(model.scheduler._target_) if model.get("scheduler") else "none",
        "dropout": model.net.get("dropout", 0.0),
        "label_smoothing": model.get("label_smoothing", 0.0),
        "max_epochs": cfg.trainer.max_epochs,
        "batch_size": cfg.data.batch_size,
        "augment": bool(cfg.data.augment),
        "seed": cfg.seed if cfg.get("seed") is not None else "none",
        "precision": str(cfg.trainer.precision),
    }


def resume_checkpoint(run_dir: Path) -> Optional[Path]:
    """Where an unfinished run in ``run_dir`` continues from: the last finished epoch."""
    for name in ("last.ckpt", "interrupted.ckpt"):
        path = run_dir / "checkpoints" / name
        if path.is_file():
            return path
    return None


def train(cfg: DictConfig) -> dict:
    """Fit, then test the best checkpoint; returns the run's metrics, epochs and best checkpoint."""
    validate(cfg)
    if cfg.get("torch_threads"):
        torch.set_num_threads(cfg.torch_threads)
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    model = instantiate(cfg.model)
    # The summary table rounds to "3.3 M"; the exact count is what the tutorials quote.
    print(f"{type(model.net).__name__}: {sum(p.numel() for p in model.net.parameters()):,} parameters")
    trainer = build_trainer(cfg)
    log_hparams(trainer, run_hparams(cfg))

    ckpt_path = cfg.get("ckpt_path") or resume_checkpoint(Path(cfg.output_dir))
    if ckpt_path:
        print(f"Continuing from {ckpt_path}")
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    if trainer.interrupted:
        raise KeyboardInterrupt
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""

    if cfg.get("test") and datamodule.test_set is not None:
        trainer.test(model, datamodule=datamodule, ckpt_path=best or None)
        if trainer.interrupted:  # Lightning < 2.4 returns from a Ctrl-C as if the stage had finished
            raise KeyboardInterrupt
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
        print(f"Test accuracy: {100 * metrics['test_acc']:.2f} % ({best or 'final weights'})")
    return {"metrics": metrics, "epochs": trainer.current_epoch, "checkpoint": best or None}


def run(cfg: DictConfig) -> Optional[float]:
    """train() for one run of train.py: skips a finished run, records result.json, returns the objective.

    In a sweep a failing run is recorded as failed and returns NaN, so the other runs go on and
    the sweep's summary lists it; alone, the error propagates.
    """
    if cfg.get("resume"):
        cfg = load_run_config(cfg.resume)  # its output_dir is the resumed folder: Hydra runs there
    run_dir = Path(cfg.output_dir)
    objective = cfg.get("optimized_metric")
    sweeping = in_sweep()
    done = finished_result(run_dir)
    if done:
        if not sweeping:
            raise ConfigError(f"{run_dir} already holds a finished run ({RESULT}); start a new run instead of overwriting it.")
        print(f"Skipping {run_dir.name}: it finished before ({RESULT}).")
        return done.get(objective)
    if rank_zero_only.rank != 0:  # a DDP worker re-launched by Lightning: rank 0 keeps the records
        return train(cfg)["metrics"].get(objective)
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    record = {"overrides": overrides, "status": "running", "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / RESULT, record)
    start = time.perf_counter()
    try:
        summary = train(cfg)
    except BaseException as err:
        # Lightning turns Ctrl-C into SystemExit after its graceful shutdown.
        interrupted = isinstance(err, (KeyboardInterrupt, SystemExit))
        status = "interrupted" if interrupted else "failed"
        message = "stopped by Ctrl-C" if status == "interrupted" else f"{type(err).__name__}: {err}"
        write_json(run_dir / RESULT, {**record, "status": status, "error": message, "wall_s": time.perf_counter() - start,
                                      "traceback": traceback.format_exc()})
        if interrupted:
            print(f"Interrupted. Continue with: python train.py resume={run_dir}")
        elif sweeping:
            log.error("Run %s failed: %s", run_dir.name, message)
            return math.nan
        raise
    metrics = summary["metrics"]
    write_json(run_dir / RESULT, {
        **record, "status": "ok", "val_acc_best": metrics.get("val_acc_best"), "test_acc": metrics.get("test_acc"),
        "test_loss": metrics.get("test_loss"), "epochs": summary["epochs"], "wall_s": time.perf_counter() - start,
        "checkpoint": summary["checkpoint"],
    })
    return metrics.get(objective)
