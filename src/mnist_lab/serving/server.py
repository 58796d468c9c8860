"""What ``python serve.py`` does: check the settings, load the checkpoint, serve the app with uvicorn."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Annotated

import uvicorn
from omegaconf import DictConfig
from pydantic import ConfigDict, Field, PositiveInt
from typing_extensions import TypedDict

from mnist_lab.errors import ConfigError, require
from mnist_lab.inference.backends import load_network
from mnist_lab.inference.reading import use_threads
from mnist_lab.logs import get_logger
from mnist_lab.serving.app import create_app
from mnist_lab.training.hparams import trained_with
from mnist_lab.validation import validate

log = get_logger(__name__)
BACKLOG = 2048  # connections queued before uvicorn accepts them (its own default)


class ServeSettings(TypedDict):
    """conf/serve.yaml's settings of the server itself."""

    __pydantic_config__ = ConfigDict(strict=True, extra="ignore")  # type: ignore[misc]

    host: Annotated[str, Field(min_length=1)]  # an address, e.g. 127.0.0.1
    port: Annotated[int, Field(ge=0, le=65535)]  # 0: any free port
    max_bytes: PositiveInt
    max_pixels: PositiveInt
    max_images: PositiveInt
    threads: PositiveInt


def bound_socket(host: str, port: int) -> socket.socket:
    """The listening socket, opened before the checkpoint is loaded: a taken port is said at once."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY only on sockets that say so, and without it a
    # keep-alive client (a browser) waits 40 ms per answer for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise ConfigError(
            f"host={host} port={port}: cannot listen there ({err.strerror}); choose another port="
        ) from None
    sock.listen(BACKLOG)  # from here connections wait in the queue until uvicorn serves them
    return sock


def serve(cfg: DictConfig) -> None:
    ckpt_path = Path(require(cfg, "ckpt_path", "python serve.py ckpt_path=outputs/runs/<run>/checkpoints/last.ckpt"))
    validate(ServeSettings, {key: cfg.get(key) for key in ServeSettings.__annotations__})
    sock = bound_socket(cfg.host, cfg.port)
    use_threads(cfg.threads)
    network = load_network(ckpt_path, cfg.backend, cfg.onnx_path)
    log.info(trained_with(network.model.run_config))
    app = create_app(network, ckpt_path, cfg.max_bytes, cfg.max_pixels, cfg.max_images, cfg.threads)
    host, port = sock.getsockname()[:2]
    log.info(f"Serving {ckpt_path} ({cfg.backend}) at http://{host}:{port}  (Ctrl-C stops)")
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
