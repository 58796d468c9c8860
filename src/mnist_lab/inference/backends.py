"""The network a checkpoint holds, run by torch or by onnxruntime: images (N, C, side, side) in [0, 1] ->
probabilities."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Literal, Optional

import numpy as np
import torch

from mnist_lab.errors import CheckpointError, ConfigError
from mnist_lab.models.classifier import ImageClassifier, load_classifier

Backend = Literal["torch", "onnx"]  # what runs the network: predict.py's and serve.py's backend=
ONNX_OPSET = 17  # onnxruntime 1.16+ runs it; the CNN needs nothing newer
ONNX_IO = {"input_names": ["images"], "output_names": ["logits"]}
CHUNK = 1000  # images a call: the 10k test set never sits in memory as one activation tensor


def export_onnx(model: ImageClassifier, file: str | Path | io.BytesIO) -> None:
    """The classifier in fp32 as ONNX: any batch size, images (N, C, side, side) in [0, 1] (normalised in the graph)."""
    model = model.float().eval()
    example = model.example_input_array[:1]
    with tempfile.TemporaryDirectory() as tmp:  # Lightning's to_onnx writes a path, never a buffer
        path = Path(tmp) / "model.onnx" if isinstance(file, io.BytesIO) else Path(file)
        model.to_onnx(
            path,
            example,
            dynamo=False,  # the TorchScript exporter: 2x faster than dynamo here and needs no onnxscript
            opset_version=ONNX_OPSET,
            dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
            **ONNX_IO,
        )
        if isinstance(file, io.BytesIO):
            file.write(path.read_bytes())


class Network:
    """What serve.py and predict.py run: ``probabilities(images)`` and the checkpoint's model (for its facts)."""

    backend = "torch"

    def __init__(self, model: ImageClassifier) -> None:
        self.model = model

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        return self.logits(images).softmax(-1)

    @torch.no_grad()
    def logits(self, images: torch.Tensor) -> torch.Tensor:
        if not len(images):
            return torch.empty(0, len(self.model.classes))
        return torch.cat([self.model(chunk).float() for chunk in images.split(CHUNK)])


class OnnxNetwork(Network):
    backend = "onnx"

    def __init__(self, model: ImageClassifier, onnx: bytes | Path, threads: int = 0) -> None:
        import onnxruntime as ort

        super().__init__(model)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # 0: onnxruntime's choice (all cores)
        try:
            self.session = ort.InferenceSession(
                onnx if isinstance(onnx, bytes) else str(onnx), options, providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # noqa: BLE001 - onnxruntime raises its own classes for a bad file
            what = "the checkpoint's export" if isinstance(onnx, bytes) else f"onnx_path={onnx}"
            raise CheckpointError(f"{what}: onnxruntime cannot load it: {str(err).splitlines()[0]}") from None

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        if not len(images):
            return torch.empty(0, len(self.model.classes))
        x = images.numpy().astype(np.float32)
        logits = [self.session.run(None, {"images": chunk})[0] for chunk in np.array_split(x, -(-len(x) // CHUNK))]
        return torch.from_numpy(np.concatenate(logits))


def load_network(ckpt_path: str | Path, backend: Backend = "torch", onnx_path: Optional[str] = None) -> Network:
    """The checkpoint's network on ``backend``; onnx runs ``onnx_path`` (export.py's model.onnx) or exports it now."""
    model = load_classifier(ckpt_path)
    if backend == "torch":
        return Network(model)
    if onnx_path is not None and not Path(onnx_path).is_file():
        raise ConfigError(f"onnx_path={onnx_path}: no such file; python export.py ckpt_path=<file.ckpt> writes one.")
    if onnx_path is None:
        buffer = io.BytesIO()
        export_onnx(model, buffer)
        onnx: bytes | Path = buffer.getvalue()
    else:
        onnx = Path(onnx_path)
    return OnnxNetwork(model, onnx, threads=torch.get_num_threads())
