"""What ``python train.py`` does with its composed config: fit, test, and keep the run's record."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Optional

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig

from mnist_lab.data import MNISTDataModule
from mnist_lab.errors import ConfigError
from mnist_lab.hparams import log_hparams, run_hparams
from mnist_lab.hydra_job import in_sweep, job_overrides
from mnist_lab.instantiators import build, build_trainer
from mnist_lab.module import DigitClassifier
from mnist_lab.resume import load_run_config, resume_checkpoint
from mnist_lab.run_record import RESULT, RunRecord, finished_result
from mnist_lab.validation import validate

log = logging.getLogger(__name__)


def prepare(cfg: DictConfig) -> tuple[MNISTDataModule, DigitClassifier]:
    """Check the settings, seed, and build the data and the model; nothing is read or trained yet."""
    validate(cfg)
    if cfg.get("torch_threads"):
        torch.set_num_threads(cfg.torch_threads)
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    datamodule, model = build(cfg.data), build(cfg.model)
    # The summary table rounds to "3.3 M"; the exact count is what the tutorials quote.
    print(f"{type(model.net).__name__}: {sum(p.numel() for p in model.net.parameters()):,} parameters")
    return datamodule, model


def _stop_if_interrupted(trainer: L.Trainer) -> None:
    if trainer.interrupted:  # Lightning < 2.4 returns from a Ctrl-C as if the stage had finished
        raise KeyboardInterrupt


def train(cfg: DictConfig) -> dict:
    """Fit, then test the best checkpoint; returns the run's metrics, epochs and best checkpoint."""
    datamodule, model = prepare(cfg)
    trainer = build_trainer(cfg)
    log_hparams(trainer, run_hparams(cfg))
    ckpt_path = cfg.get("ckpt_path") or resume_checkpoint(Path(cfg.output_dir))
    if ckpt_path:
        print(f"Continuing from {ckpt_path}")
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    _stop_if_interrupted(trainer)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    if cfg.get("test") and datamodule.test_set is None:
        print("Not tested: there is no labelled test set (data.test_csv with a 'label' column).")
    elif cfg.get("test"):
        trainer.test(model, datamodule=datamodule, ckpt_path=best or None)
        _stop_if_interrupted(trainer)
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
    run_dir, objective = Path(cfg.output_dir), cfg.get("optimized_metric")
    done = finished_result(run_dir)
    if done:
        if not in_sweep():
            raise ConfigError(f"{run_dir} already holds a finished run ({RESULT}); start a new run instead of overwriting it.")
        print(f"Skipping {run_dir.name}: it finished before ({RESULT}).")
        return done.get(objective)
    if rank_zero_only.rank != 0:  # a DDP worker re-launched by Lightning: rank 0 keeps the records
        return train(cfg)["metrics"].get(objective)
    record = RunRecord(run_dir, job_overrides())
    try:
        outcome = train(cfg)
    except BaseException as err:
        status = record.fail(err)
        if status == "interrupted":
            print(f"Interrupted. Continue with: python train.py resume={run_dir}")
        elif in_sweep():
            log.error("Run %s failed: %s", run_dir.name, f"{type(err).__name__}: {err}")
            return math.nan
        raise
    record.finish(outcome["metrics"], outcome["epochs"], outcome["checkpoint"])
    return outcome["metrics"].get(objective)
