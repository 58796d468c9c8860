"""What ``python export.py`` does: the checkpoint as model.onnx, checked with onnxruntime on its test images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from mnist_lab.data.contract import tensors
from mnist_lab.data.datamodule import data_of_run
from mnist_lab.errors import ConfigError
from mnist_lab.inference.backends import Network, OnnxNetwork, export_onnx
from mnist_lab.logs import get_logger
from mnist_lab.models.classifier import load_classifier
from mnist_lab.training.hparams import trained_with
from mnist_lab.validation import Text

log = get_logger(__name__)


def compare(torch_net: Network, onnx_net: Network, images, labels) -> dict:
    """How far onnxruntime's answers are from torch's on the same images."""
    ours, theirs = torch_net.logits(images), onnx_net.logits(images)
    return {
        "images": len(images),
        "predictions_differ": int((ours.argmax(-1) != theirs.argmax(-1)).sum()),
        "max_logit_difference": float((ours - theirs).abs().max()),
        "torch_accuracy": float((ours.argmax(-1) == labels).float().mean()),
        "onnxruntime_accuracy": float((theirs.argmax(-1) == labels).float().mean()),
    }


def export(ckpt_path: Text, output_dir: str, check: bool, data_dir: Optional[str]) -> dict:
    """conf/export.yaml's task: ``ckpt_path`` as ``output_dir``/model.onnx; ``check``: compared with torch on the
    test images of its data (in ``data_dir``, or where the checkpoint's data was)."""
    model = load_classifier(ckpt_path)
    log.info(trained_with(model.run_config))
    onnx_path = Path(output_dir) / "model.onnx"
    export_onnx(model, onnx_path)
    result = {"checkpoint": str(Path(ckpt_path).resolve()), "onnx": str(onnx_path), "bytes": onnx_path.stat().st_size}
    log.info(f"Wrote {onnx_path} ({result['bytes'] / 1e6:.1f} MB, fp32, any batch size, images in [0, 1])")
    if check:
        test = tensors(data_of_run(model.run_config, data_dir), "test")
        if test is None:
            raise ConfigError("check=true needs test images: the checkpoint's data has none; give check=false.")
        result |= compare(Network(model), OnnxNetwork(model, onnx_path), *test)
        log.info(
            f"onnxruntime on the {result['images']} test images: {result['predictions_differ']} predictions differ "
            f"from torch, largest logit difference {result['max_logit_difference']:.1e}, "
            f"accuracy {100 * result['onnxruntime_accuracy']:.2f} % (torch {100 * result['torch_accuracy']:.2f} %)"
        )
    Path(output_dir, "export.json").write_text(json.dumps(result, indent=2))
    if result.get("predictions_differ"):
        raise SystemExit(f"error: onnxruntime predicts {result['predictions_differ']} test images differently")
    return result
