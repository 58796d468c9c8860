"""Train a digit classifier: ``python train.py model=cnn`` (see conf/train.yaml)."""

import sys

import hydra
from omegaconf import DictConfig

from mnist_lab.errors import friendly_errors
from mnist_lab.resolvers import register_resolvers
from mnist_lab.sweep_checks import require_plugins
from mnist_lab.training import run

register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@friendly_errors
def main(cfg: DictConfig) -> float | None:
    return run(cfg)


if __name__ == "__main__":
    require_plugins(sys.argv[1:])
    main()
