"""What ``python train.py`` does with its composed config."""

from __future__ import annotations

import logging
from typing import Optional

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig

from mnist_lab.callbacks import log_hparams
from mnist_lab.config import validate

log = logging.getLogger(__name__)


def build_trainer(cfg: DictConfig) -> L.Trainer:
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    if cfg.data.val_size == 0:
        # Nothing to monitor without validation: keep the last checkpoint instead of the best.
        for cb in callbacks:
            if isinstance(cb, ModelCheckpoint):
                cb.monitor, cb.save_top_k = None, 1
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c]
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


def train(cfg: DictConfig) -> Optional[float]:
    """Fit, then test the best checkpoint; returns ``cfg.optimized_metric`` for sweepers."""
    validate(cfg)
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    model = instantiate(cfg.model)
    # The summary table rounds to "3.3 M"; the exact count is what the tutorials quote.
    print(f"{type(model.net).__name__}: {sum(p.numel() for p in model.net.parameters()):,} parameters")
    trainer = build_trainer(cfg)
    log_hparams(trainer, run_hparams(cfg))

    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}

    if cfg.get("test") and datamodule.test_set is not None:
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        trainer.test(model, datamodule=datamodule, ckpt_path=best or None)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
        log.info("test_acc=%.4f test_loss=%.4f (checkpoint: %s)", metrics["test_acc"], metrics["test_loss"], best or "final weights")
        print(f"Test accuracy: {100 * metrics['test_acc']:.2f} % ({best or 'final weights'})")
    return metrics.get(cfg.get("optimized_metric"))
