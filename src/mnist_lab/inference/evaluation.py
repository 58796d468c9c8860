"""What ``python eval.py ckpt_path=...`` does: test a checkpoint and report per class."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import lightning as L
import torch
from omegaconf import OmegaConf

from mnist_lab.building import build
from mnist_lab.data.contract import batches, loader
from mnist_lab.data.datamodule import data_of_run
from mnist_lab.errors import ConfigError
from mnist_lab.known_noise import hide_known_noise
from mnist_lab.logs import get_logger
from mnist_lab.models.classifier import load_classifier
from mnist_lab.training.builders import instantiate_loggers
from mnist_lab.training.callbacks import TestFigures
from mnist_lab.training.hparams import trained_with
from mnist_lab.training.run_folder import read_result
from mnist_lab.validation import ConfigNode, Text

log = get_logger(__name__)


def class_report(confusion: torch.Tensor, classes: list[str]) -> list[dict[str, Any]]:
    """Precision, recall, F1 and support per class from a (true x predicted) confusion matrix."""
    confusion = confusion.double()
    hits, support, predicted = confusion.diag(), confusion.sum(1), confusion.sum(0)
    precision = hits / predicted.clamp(min=1)
    recall = hits / support.clamp(min=1)
    f1 = 2 * precision * recall / (precision + recall).clamp(min=1e-12)
    return [
        {
            "class": classes[d],
            "precision": float(precision[d]),
            "recall": float(recall[d]),
            "f1": float(f1[d]),
            "support": int(support[d]),
        }
        for d in range(len(confusion))
    ]


def checkpoint_of(path: str) -> str:
    """A checkpoint file as given, or a run folder's best checkpoint (the one its result.json names)."""
    if not Path(path).is_dir():
        return path
    best = read_result(Path(path)).get("checkpoint")
    if not best:
        raise ConfigError(f"ckpt_path={path} is not allowed: it is a folder without a finished run's result.json")
    return best


def evaluate(
    ckpt_path: Text | list[Text],
    output_dir: str,
    trainer: ConfigNode,
    logger: Optional[ConfigNode] = None,  # a config group a user may leave out (logger=null)
    data: Optional[ConfigNode] = None,
) -> dict:
    """conf/eval.yaml's task: test ``ckpt_path`` (a checkpoint or run folder; several: as an ensemble) into
    ``output_dir`` with the Trainer and loggers of ``trainer`` and ``logger``, on ``data`` (the config of a data
    module; None: the checkpoint's own data)."""
    paths = [checkpoint_of(p) for p in ([ckpt_path] if isinstance(ckpt_path, str) else ckpt_path)]
    if len(paths) > 1:
        return evaluate_ensemble(paths, output_dir, data)
    return evaluate_one(paths[0], output_dir, trainer, logger, data)


def evaluate_one(path: str, output_dir: str, trainer: ConfigNode, logger: ConfigNode, data: ConfigNode) -> dict:
    """Test one checkpoint; metrics.json and the test figures go to ``output_dir``."""
    model = load_classifier(path)
    log.info(trained_with(model.run_config))
    datamodule = test_data(data, model.run_config)
    figures = TestFigures(output_dir)
    loggers = instantiate_loggers(logger)
    hide_known_noise()
    tester = build(trainer, callbacks=[figures], logger=loggers or False, enable_model_summary=False)
    [metrics] = tester.test(model, datamodule=datamodule, verbose=False)

    report = class_report(figures.confusion.compute(), model.classes)
    result = {
        "checkpoint": str(Path(path).resolve()),
        **metrics,
        "images": sum(r["support"] for r in report),
        "per_class": report,
    }
    Path(output_dir, "metrics.json").write_text(json.dumps(result, indent=2))

    log.info(
        f"{path}: test_loss {metrics['test_loss']:.4f}, test_acc {100 * metrics['test_acc']:.2f} %"
        f" on {result['images']} images"
    )
    log_report(report)
    log.info(f"Wrote metrics.json, confusion_matrix.png, misclassified.png to {output_dir}")
    return result


def log_report(report: list[dict[str, Any]]) -> None:
    width = max(5, *(len(r["class"]) for r in report))
    log.info(f"{'class':>{width}}  precision  recall      f1  support")
    for r in report:
        log.info(
            f"{r['class']:>{width}}  {r['precision']:>9.4f}  {r['recall']:>6.4f}  {r['f1']:>6.4f}  {r['support']:>7}"
        )


def test_data(data: Optional[ConfigNode], run_config: Optional[dict]) -> L.LightningDataModule:
    """The data to test on: ``data=...`` when chosen, else the checkpoint's own; refused without a test set."""
    chosen = {"data": OmegaConf.to_container(data, resolve=True)} if data else run_config
    datamodule = data_of_run(chosen)
    if loader(datamodule, "test") is None:
        raise ConfigError(f"there is nothing to test on: {type(datamodule).__name__} has no test_dataloader.")
    return datamodule


@torch.inference_mode()
def evaluate_ensemble(paths: list[str], output_dir: str, data: Optional[ConfigNode]) -> dict:
    """Test several checkpoints (a setting's folds) alone and as one model, the mean of their softmax."""
    models = [load_classifier(path) for path in paths]
    datamodule = test_data(data, models[0].run_config)
    parts = [(torch.stack([m(x).softmax(1) for m in models]), y) for x, y in batches(datamodule, "test")]
    probs, labels = torch.cat([p for p, _ in parts], 1), torch.cat([y for _, y in parts])
    single = [float((p.argmax(1) == labels).float().mean()) for p in probs]
    ensemble = float((probs.mean(0).argmax(1) == labels).float().mean())
    result = {"checkpoints": [str(Path(p).resolve()) for p in paths], "test_acc": ensemble, "single_test_acc": single}
    result["images"] = len(labels)
    Path(output_dir, "metrics.json").write_text(json.dumps(result, indent=2))
    for path, acc in zip(paths, single):
        log.info(f"{path}: test_acc {100 * acc:.2f} %")
    mean = sum(single) / len(single)
    log.info(
        f"Ensemble of {len(paths)} (mean softmax): test_acc {100 * ensemble:.2f} % on {len(labels)} images"
        f" (single models: mean {100 * mean:.2f} %, best {100 * max(single):.2f} %)"
    )
    return result
