"""What ``python eval.py ckpt_path=...`` does: test a checkpoint and report per class."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from omegaconf import DictConfig

from mnist_lab.building import build
from mnist_lab.errors import require
from mnist_lab.known_noise import hide_known_noise
from mnist_lab.logs import get_logger
from mnist_lab.models.classifier import load_classifier
from mnist_lab.training.builders import instantiate_loggers
from mnist_lab.training.callbacks import TestFigures
from mnist_lab.training.hparams import trained_with

log = get_logger(__name__)


def class_report(confusion: torch.Tensor) -> list[dict[str, float]]:
    """Precision, recall, F1 and support per digit from a (true x predicted) confusion matrix."""
    confusion = confusion.double()
    hits, support, predicted = confusion.diag(), confusion.sum(1), confusion.sum(0)
    precision = hits / predicted.clamp(min=1)
    recall = hits / support.clamp(min=1)
    f1 = 2 * precision * recall / (precision + recall).clamp(min=1e-12)
    return [
        {
            "digit": d,
            "precision": float(precision[d]),
            "recall": float(recall[d]),
            "f1": float(f1[d]),
            "support": int(support[d]),
        }
        for d in range(len(confusion))
    ]


def evaluate(cfg: DictConfig) -> dict:
    """Test the checkpoint ``cfg.ckpt_path``; metrics.json and the test figures go to the run folder."""
    path = require(cfg, "ckpt_path", "python eval.py ckpt_path=outputs/runs/<run>/checkpoints/last.ckpt")
    model = load_classifier(path)
    log.info(trained_with(model.run_config))
    datamodule = build(cfg.data)
    figures = TestFigures(cfg.output_dir)
    loggers = instantiate_loggers(cfg)
    hide_known_noise()
    trainer = build(cfg.trainer, callbacks=[figures], logger=loggers or False, enable_model_summary=False)
    [metrics] = trainer.test(model, datamodule=datamodule, verbose=False)

    report = class_report(figures.confusion.compute())
    result = {
        "checkpoint": str(Path(path).resolve()),
        **metrics,
        "images": sum(r["support"] for r in report),
        "per_class": report,
    }
    Path(cfg.output_dir, "metrics.json").write_text(json.dumps(result, indent=2))

    log.info(
        f"{path}: test_loss {metrics['test_loss']:.4f}, test_acc {100 * metrics['test_acc']:.2f} %"
        f" on {result['images']} images"
    )
    log_report(report)
    log.info(f"Wrote metrics.json, confusion_matrix.png, misclassified.png to {cfg.output_dir}")
    return result


def log_report(report: list[dict[str, float]]) -> None:
    log.info("digit  precision  recall      f1  support")
    for r in report:
        log.info(f"{r['digit']:>5}  {r['precision']:>9.4f}  {r['recall']:>6.4f}  {r['f1']:>6.4f}  {r['support']:>7}")
