"""What ``python serve.py`` does: check the settings, load the checkpoint, serve the app with uvicorn."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import uvicorn
from fastapi import FastAPI
from pydantic import Field, PositiveInt
from uvicorn.supervisors import Multiprocess

from mnist_lab.errors import ConfigError
from mnist_lab.inference.backends import Backend, load_network
from mnist_lab.inference.reading import use_threads
from mnist_lab.logs import get_logger
from mnist_lab.serving.app import create_app
from mnist_lab.training.hparams import trained_with
from mnist_lab.validation import Text

log = get_logger(__name__)
BACKLOG = 2048  # connections queued before uvicorn accepts them (its own default)
AUTO_WORKERS = 4  # workers=auto: a process per core, at most this many (each holds its own torch and network)
WORKER_START_S = 120  # a worker that has not answered uvicorn's health check in this long is restarted
WORKER_SETTINGS = "MNIST_LAB_SERVE"  # the environment variable a worker process reads its settings from


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


def app_of(ckpt_path: str, backend: Backend, onnx_path: Optional[str], threads: int, **limits: int) -> FastAPI:
    """The app of serve.py's settings: the checkpoint loaded, its network on ``threads`` threads."""
    use_threads(threads)
    network = load_network(Path(ckpt_path), backend, onnx_path)
    return create_app(network, Path(ckpt_path), threads=threads, **limits)


def worker_app() -> FastAPI:
    """uvicorn's app factory in each worker process (a fresh interpreter): the settings serve() handed down."""
    return app_of(**json.loads(os.environ[WORKER_SETTINGS]))


def serve(
    ckpt_path: Text,
    output_dir: str,
    backend: Backend,
    onnx_path: Optional[str],
    host: Text,  # an address, e.g. 127.0.0.1
    port: Annotated[int, Field(ge=0, le=65535)],  # 0: any free port
    max_bytes: PositiveInt,
    max_pixels: PositiveInt,
    max_images: PositiveInt,
    threads: PositiveInt,
    workers: PositiveInt | Literal["auto"],
) -> None:
    """conf/serve.yaml's task: the page and API of ``ckpt_path`` at ``host``:``port`` (taken before the checkpoint is
    read), in ``workers`` processes of ``threads`` torch threads each."""
    sock = bound_socket(host, port)
    workers = min(os.cpu_count() or 1, AUTO_WORKERS) if workers == "auto" else workers
    settings = dict(ckpt_path=ckpt_path, backend=backend, onnx_path=onnx_path, threads=threads, workers=workers,
                    max_bytes=max_bytes, max_pixels=max_pixels, max_images=max_images)  # fmt: skip
    app = app_of(**settings)  # in this process too: a bad checkpoint is said once, before any worker starts
    log.info(trained_with(app.state.reader.network.model.run_config))
    bound, port = sock.getsockname()[:2]
    log.info(f"Serving {ckpt_path} ({backend}, {workers} worker processes) at http://{bound}:{port}")
    if workers == 1:
        uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
        return
    run_workers(sock, settings, Path(output_dir) / "prometheus")


def run_workers(sock: socket.socket, settings: dict[str, Any], metrics_dir: Path) -> None:
    """uvicorn's worker processes on ``sock``, each building its own app of ``settings`` (``worker_app``)."""
    os.environ[WORKER_SETTINGS] = json.dumps(settings)
    # Each worker counts its own requests; in this folder prometheus_client adds them up for /metrics.
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
