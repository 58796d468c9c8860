"""Test a checkpoint: ``python eval.py ckpt_path=outputs/runs/<run>/checkpoints/last.ckpt``."""

import sys

import hydra
from omegaconf import DictConfig

from mnist_lab.hydra_job import friendly_errors
from mnist_lab.inference.evaluation import evaluate
from mnist_lab.resolvers import register_resolvers
from mnist_lab.sweeps.checks import require_extras

register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
@friendly_errors
def main(cfg: DictConfig) -> float:
    return evaluate(cfg)["test_acc"]


if __name__ == "__main__":
    require_extras(sys.argv[1:])
    main()
