"""Stored configs and checkpoints from before a module moved or a class was renamed: their class paths made current.

Run folders (``.hydra/config.yaml``) and checkpoints (``hyper_parameters``, ``run_config``) store
``_target_`` paths. They are migrated once, when they are read; everything built after that sees
current paths only.
"""

from __future__ import annotations

import copy
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

# Class paths stored before the package was grouped into folders -> where they are now.
MOVED = {
    "mnist_lab.data.MNISTDataModule": "mnist_lab.data.datamodule.ImageDataModule",
    "mnist_lab.module.DigitClassifier": "mnist_lab.models.classifier.ImageClassifier",
    # Renamed when other datasets came in: nothing in them is MNIST's or digits' alone.
    "mnist_lab.data.datamodule.MNISTDataModule": "mnist_lab.data.datamodule.ImageDataModule",
    "mnist_lab.models.classifier.DigitClassifier": "mnist_lab.models.classifier.ImageClassifier",
    "mnist_lab.module.piecewise_lr": "mnist_lab.models.schedules.piecewise_lr",
    "mnist_lab.checkpoint_io.AtomicCheckpointIO": "mnist_lab.training.checkpoint_io.AtomicCheckpointIO",
    "mnist_lab.callbacks.AtomicCheckpointIO": "mnist_lab.training.checkpoint_io.AtomicCheckpointIO",
    "mnist_lab.sweeps.checks.SweepKeysExist": "mnist_lab.sweeps.swept_keys.SweepKeysExist",
    **{
        f"mnist_lab.networks.{name}": f"mnist_lab.models.networks.{name}"
        for name in ("CNN", "DeepCNN", "LogReg", "MLP")
    },
    **{
        f"mnist_lab.callbacks.{name}": f"mnist_lab.training.callbacks.{name}"
        for name in ("ProgressBar", "WeightHistograms", "EpochHistory", "TestFigures", "EMA", "InterruptCheckpoint")
    },
}


def _children(node: Any) -> list[Any]:
    # A config's children as nodes: unresolved, so that an interpolation (${hydra:...}) is left as it is.
    if isinstance(node, DictConfig):
        return [node._get_node(key) for key in node]
    if isinstance(node, ListConfig):
        return [node._get_node(i) for i in range(len(node))]
    return list(node.values()) if isinstance(node, dict) else list(node) if isinstance(node, list) else []


def _remap(node: Any) -> None:
    if isinstance(node, (dict, DictConfig)) and isinstance(node.get("_target_"), str):
        node["_target_"] = MOVED.get(node["_target_"], node["_target_"])
    for child in _children(node):
        _remap(child)


def migrate(conf: Any) -> Any:
    """A copy of ``conf`` (a config or a checkpoint's dict) with each moved ``_target_``, at any depth, made current."""
    conf = copy.deepcopy(conf)
    if isinstance(conf, (DictConfig, ListConfig)):
        OmegaConf.set_readonly(conf, False)  # a copy of a read-only config (Hydra's own) is ours to change
    _remap(conf)
    return conf
