"""The draw-a-digit page and an HTTP API: ``python serve.py ckpt_path=<file.ckpt>``, then open http://127.0.0.1:8000."""

import sys

import hydra
from omegaconf import DictConfig

from mnist_lab.hydra_job import friendly_errors
from mnist_lab.resolvers import register_resolvers
from mnist_lab.sweeps.checks import require_extra, require_extras

register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="serve")
@friendly_errors
def main(cfg: DictConfig) -> None:
    from mnist_lab.serving.server import serve

    serve(cfg)


if __name__ == "__main__":
    for module in ("fastapi", "uvicorn", "python_multipart"):
        require_extra(module, "serve", "serve.py")
    require_extras(sys.argv[1:])
    main()
