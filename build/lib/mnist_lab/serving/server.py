"""What ``python serve.py`` does: check the settings, load the checkpoint, serve the app with uvicorn."""

from __future__ import annotations

import socket
from pathlib import Path

import uvicorn
from omegaconf import DictConfig

from mnist_lab.errors import ConfigError, check, require
from mnist_lab.inference.backends import load_network
from mnist_lab.inference.reading import use_threads
from mnist_lab.logs import get_logger
from mnist_lab.serving.app import create_app
from mnist_lab.training.hparams import trained_with

log = get_logger(__name__)
BACKLOG = 2048  # connections queued before uvicorn accepts them (its own default)


def check_settings(cfg: DictConfig) -> None:
    for key in ("max_bytes", "max_pixels", "max_images", "threads"):
        check(isinstance(cfg[key], int) and cfg[key] >= 1, key, cfg[key], "it must be a whole number >= 1")
    check(isinstance(cfg.port, int) and 0 <= cfg.port <= 65535, "port", cfg.port, "it must be in 0..65535")
    check(isinstance(cfg.host, str) and cfg.host != "", "host", cfg.host, "it must be an address, e.g. 127.0.0.1")


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
    check_settings(cfg)
    sock = bound_socket(cfg.host, cfg.port)
    use_threads(cfg.threads)
    network = load_network(ckpt_path, cfg.backend, cfg.onnx_path)
    log.info(trained_with(network.model.run_config))
    app = create_app(network, ckpt_path, cfg.max_bytes, cfg.max_pixels, cfg.max_images, cfg.threads)
    host, port = sock.getsockname()[:2]
    log.info(f"Serving {ckpt_path} ({cfg.backend}) at http://{host}:{port}  (Ctrl-C stops)")
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
