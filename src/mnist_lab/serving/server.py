"""What ``python serve.py`` does: check the settings, load the checkpoint, serve the app with uvicorn."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path
from typing import Annotated, Literal, Optional

import uvicorn
from fastapi import FastAPI
from omegaconf import DictConfig
from pydantic import ConfigDict, Field, PositiveInt
from typing_extensions import TypedDict
from uvicorn.supervisors import Multiprocess

from mnist_lab.errors import ConfigError, require
from mnist_lab.inference.backends import load_network
from mnist_lab.inference.reading import use_threads
from mnist_lab.logs import get_logger
from mnist_lab.serving.app import create_app
from mnist_lab.training.hparams import trained_with
from mnist_lab.validation import check_config

log = get_logger(__name__)
BACKLOG = 2048  # connections queued before uvicorn accepts them (its own default)
AUTO_WORKERS = 4  # workers=auto: a process per core, at most this many (each holds its own torch and network)
WORKER_START_S = 120  # a worker that has not answered uvicorn's health check in this long is restarted
WORKER_SETTINGS = "MNIST_LAB_SERVE"  # the environment variable a worker process reads its settings from


class ServeSettings(TypedDict):
    """conf/serve.yaml: any other key is refused."""

    __pydantic_config__ = ConfigDict(strict=True, extra="forbid")  # type: ignore[misc]

    ckpt_path: str
    backend: Literal["torch", "onnx"]
    onnx_path: Optional[str]
    host: Annotated[str, Field(min_length=1)]  # an address, e.g. 127.0.0.1
    port: Annotated[int, Field(ge=0, le=65535)]  # 0: any free port
    max_bytes: PositiveInt
    max_pixels: PositiveInt
    max_images: PositiveInt
    threads: PositiveInt
    workers: PositiveInt | Literal["auto"]
    output_dir: str
    task_name: str


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


def app_of(settings: dict) -> FastAPI:
    """The app of serve.py's settings: the checkpoint loaded, its network on ``threads`` threads."""
    use_threads(settings["threads"])
    ckpt_path = Path(settings["ckpt_path"])
    network = load_network(ckpt_path, settings["backend"], settings["onnx_path"])
    limits = {key: settings[key] for key in ("max_bytes", "max_pixels", "max_images", "threads", "workers")}
    return create_app(network, ckpt_path, **limits)


def worker_app() -> FastAPI:
    """uvicorn's app factory in each worker process (a fresh interpreter): the settings serve() handed down."""
    return app_of(json.loads(os.environ[WORKER_SETTINGS]))


def serve(cfg: DictConfig) -> None:
    ckpt_path = Path(require(cfg, "ckpt_path", "python serve.py ckpt_path=outputs/runs/<run>/checkpoints/last.ckpt"))
    check_config(ServeSettings, cfg)
    sock = bound_socket(cfg.host, cfg.port)
    settings = {key: cfg[key] for key in ServeSettings.__annotations__}
    settings["workers"] = min(os.cpu_count() or 1, AUTO_WORKERS) if cfg.workers == "auto" else cfg.workers
    app = app_of(settings)  # in this process too: a bad checkpoint is said once, before any worker starts
    log.info(trained_with(app.state.reader.network.model.run_config))
    host, port = sock.getsockname()[:2]
    log.info(f"Serving {ckpt_path} ({cfg.backend}, {settings['workers']} worker processes) at http://{host}:{port}")
    if settings["workers"] == 1:
        uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
        return
    os.environ[WORKER_SETTINGS] = json.dumps(settings)
    # Each worker counts its own requests; in this folder prometheus_client adds them up for /metrics.
    metrics_dir = Path(cfg.output_dir) / "prometheus"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    config = uvicorn.Config(
        f"{__name__}:worker_app",
        factory=True,
        workers=settings["workers"],
        log_level="warning",
        timeout_worker_healthcheck=WORKER_START_S,  # its 5 s default kills a worker still importing torch
    )
    Multiprocess(config, sockets=[sock]).run()
