"""Train a digit classifier: ``python train.py model=cnn`` (see conf/train.yaml)."""

import hydra
from omegaconf import DictConfig

from mnist_lab.cli import run
from mnist_lab.config import friendly_errors, register_resolvers

register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@friendly_errors
def main(cfg: DictConfig) -> float | None:
    return run(cfg)


if __name__ == "__main__":
    main()
