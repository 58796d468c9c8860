"""The checkpoint as ONNX for onnxruntime: ``python export.py ckpt_path=<file.ckpt>`` writes model.onnx."""

import hydra
from omegaconf import DictConfig

from mnist_lab.hydra_job import friendly_errors
from mnist_lab.resolvers import register_resolvers
from mnist_lab.sweeps.checks import require_extra

register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="export")
@friendly_errors
def main(cfg: DictConfig) -> None:
    from mnist_lab.inference.exporting import export

    result = export(cfg)
    if result.get("predictions_differ"):
        raise SystemExit(f"error: onnxruntime predicts {result['predictions_differ']} test images differently")


if __name__ == "__main__":
    for module in ("onnx", "onnxruntime"):
        require_extra(module, "onnx", "export.py")
    main()
