"""Recognise your own digits: ``python predict.py ckpt_path=<file.ckpt> inputs=[a.png,folder/]``."""

import sys

import hydra
from omegaconf import DictConfig

from mnist_lab.hydra_job import friendly_errors
from mnist_lab.inference.prediction import predict
from mnist_lab.resolvers import register_resolvers
from mnist_lab.sweeps.checks import require_extras

register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="predict")
@friendly_errors
def main(cfg: DictConfig) -> None:
    if predict(cfg):
        raise SystemExit(1)


if __name__ == "__main__":
    require_extras(sys.argv[1:])
    main()
