"""Train a digit classifier: ``python train.py model=cnn`` (see conf/train.yaml)."""

import sys

import hydra
from omegaconf import DictConfig

from mnist_lab.hydra_job import friendly_errors
from mnist_lab.resolvers import register_resolvers
from mnist_lab.sweeps.checks import require_extras
from mnist_lab.training.run import run

register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@friendly_errors
def main(cfg: DictConfig) -> float | None:
    return run(cfg)


if __name__ == "__main__":
    require_extras(sys.argv[1:])
    main()
