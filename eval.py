"""Test a checkpoint: ``python eval.py ckpt_path=outputs/runs/<run>/checkpoints/last.ckpt``."""

import hydra
from omegaconf import DictConfig

from mnist_lab.errors import friendly_errors
from mnist_lab.resolvers import register_resolvers
from mnist_lab.evaluate import evaluate

register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
@friendly_errors
def main(cfg: DictConfig) -> float:
    return evaluate(cfg)["test_acc"]


if __name__ == "__main__":
    main()
