"""serve.py's web app: the draw-a-digit page at /, the JSON API at /predict, /model and /health, its
Swagger UI at /docs (served from the package: it works offline), and Prometheus metrics at /metrics.

Every request's images go through ``reading.read_image``, predict.py's path. A request whose images all
fail is answered with a 4xx and the message predict.py prints; one with some images read, with 200 and
each failed image's error in its result. Every error is JSON: ``{"error": ...}``. The server keeps
serving."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any, Optional

import anyio
import cv2
import torch
from fastapi import APIRouter, FastAPI, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from prometheus_client import CollectorRegistry
from prometheus_fastapi_instrumentator import Instrumentator
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from mnist_lab.errors import ImageTooLarge, InputError
from mnist_lab.inference.backends import Network
from mnist_lab.inference.reading import Reading, read_image, unexpected
from mnist_lab.training.hparams import trained_with
from mnist_lab.training.run_folder import read_result

PAGE = files("mnist_lab.serving") / "page"
METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}  # answered 405 on a route that does not take them


def model_facts(network: Network, ckpt_path: Path) -> dict[str, Any]:
    """GET /model: the checkpoint, its network, and what its run recorded (test accuracy from result.json)."""
    result = read_result(ckpt_path.resolve().parent.parent)  # <run>/checkpoints/<file>.ckpt
    model = network.model
    return {
        "checkpoint": str(ckpt_path),
        "network": type(model.net).__name__,
        "parameters": sum(p.numel() for p in model.net.parameters()),
        "backend": network.backend,
        "trained_with": trained_with(model.run_config).removeprefix("Trained with: "),
        "test_acc": result.get("test_acc"),
        "classes": model.classes,
    }


def seen_png(seen: torch.Tensor) -> str:
    """The (C, side, side) image the network saw as a PNG data URL (~400 bytes for a digit: a list of 784 levels
    cost the server more to write than the network to read it)."""
    pixels = (seen * 255).round().byte().permute(1, 2, 0).numpy()
    _, png = cv2.imencode(".png", pixels[..., ::-1] if pixels.shape[-1] == 3 else pixels)  # OpenCV writes BGR
    return "data:image/png;base64," + base64.b64encode(png.tobytes()).decode()


def reading_json(name: str, reading: Reading) -> dict[str, Any]:
    return {
        "name": name,
        "class": reading.name,
        "label": reading.label,
        "probabilities": [round(p, 5) for p in reading.probabilities.tolist()],
        "seen": seen_png(reading.seen),
    }


def refusal(status: int, message: str, headers: Optional[dict[str, str]] = None, **more: Any) -> JSONResponse:
    return JSONResponse({"error": message, **more}, status_code=status, headers=headers)


class BodyLimit:
    """Refuses a POST before its body is read: its length must be stated, and within ``limit``.

    A plain ASGI middleware: Starlette's ``BaseHTTPMiddleware`` costs a task per request."""

    def __init__(self, app: ASGIApp, limit: int, advice: str) -> None:
        self.app, self.limit, self.advice = app, limit, advice

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            headers = Headers(scope=scope)
            length = headers.get("content-length", "0")
            if "chunked" in headers.get("transfer-encoding", ""):
                refused = refusal(411, "say the body's length (Content-Length); chunked uploads are not accepted")
            elif not length.isdigit():
                refused = refusal(400, f"Content-Length: {length} is not a number of bytes")
            elif int(length) > self.limit:
                refused = refusal(413, f"request too large ({length} bytes, over {self.limit}): {self.advice}")
            else:
                refused = None
            if refused:
                return await refused(scope, receive, send)
        await self.app(scope, receive, send)


@dataclass
class Reader:
    """What the routes share: the network, the limits, and as many images read at once as the cores hold
    (more threads would only queue for the GIL)."""

    network: Network
    facts: dict[str, Any]
    max_bytes: int
    max_pixels: int
    max_images: int
    limiter: anyio.CapacityLimiter

    def read(self, name: str, data: bytes) -> tuple[dict[str, Any], Optional[tuple[int, str]]]:
        """The JSON of one image, and its (status, message) if it cannot be read."""
        try:
            if len(data) > self.max_bytes:
                raise ImageTooLarge(f"image too large ({len(data)} bytes, over the limit of {self.max_bytes})")
            return reading_json(name, read_image(self.network, data, self.max_pixels)), None
        except InputError as err:
            error = err.status, str(err)
        except Exception as err:  # noqa: BLE001 - a bug met on one image must not cost the others, nor the server
            error = 422, unexpected(name, err)
        return {"name": name, "error": error[1]}, error


routes = APIRouter()


@routes.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@routes.get("/model")
def model(request: Request) -> dict[str, Any]:
    return request.app.state.reader.facts


@routes.post("/predict", name="predict")
async def predict(request: Request, images: list[UploadFile]) -> JSONResponse:
    """Each image: its class (name and label), a probability per class, the 28x28 the network saw; or its error."""
    reader: Reader = request.app.state.reader
    if len(images) > reader.max_images:
        return refusal(413, f"{len(images)} images in one request; send at most {reader.max_images}")
    results, errors = [], []
    for image in images:
        name = image.filename or "image"
        result, error = await anyio.to_thread.run_sync(reader.read, name, await image.read(), limiter=reader.limiter)
        results.append(result)
        errors += [(error[0], f"{name}: {error[1]}")] if error else []
    if errors and len(errors) == len(results):  # nothing read: the first image's status says why
        return refusal(*errors[0], results=results)
    return JSONResponse({"results": results, "errors": len(errors)})  # each failed image has its "error"


async def http_error(request: Request, err: HTTPException) -> JSONResponse:
    """Starlette's own errors (404, 405) in the API's shape."""
    return refusal(err.status_code, str(err.detail), headers=err.headers)


def wrong_method(allowed: set[str]) -> Any:
    """A route's answer to the methods it does not take (the page's mount would say 404 instead)."""
    allow = ", ".join(sorted(allowed))

    def answer(request: Request) -> JSONResponse:
        return refusal(405, f"{request.method} {request.url.path} is not served: use {allow}", {"Allow": allow})

    return answer


async def malformed(request: Request, err: RequestValidationError) -> JSONResponse:
    return refusal(
        400,
        f"send images as multipart form files named 'images': curl -F images=@digit.png {request.url_for('predict')}",
    )


def create_app(
    network: Network,
    ckpt_path: Path,
    max_bytes: int,
    max_pixels: int,
    max_images: int,
    threads: int = 1,
    workers: int = 1,
) -> FastAPI:
    """``threads``: the torch threads one image's network uses; ``workers``: the processes sharing the cores."""
    # FastAPIOffline: FastAPI whose /docs loads Swagger UI's files from its package, not from a CDN.
    app = FastAPIOffline(title="mnist-lab", summary="Recognise a handwritten digit", redoc_url=None)
    limiter = anyio.CapacityLimiter(max(1, (os.cpu_count() or 1) // (threads * workers)))
    facts = model_facts(network, ckpt_path)
    app.state.reader = Reader(network, facts, max_bytes, max_pixels, max_images, limiter)
    app.add_middleware(
        BodyLimit, limit=max_bytes * max_images, advice=f"send at most {max_images} images of {max_bytes} bytes"
    )
    app.add_exception_handler(RequestValidationError, malformed)
    app.add_exception_handler(HTTPException, http_error)
    app.include_router(routes)
    for route in routes.routes:
        if isinstance(route, APIRoute):
            app.add_api_route(route.path, wrong_method(route.methods), methods=list(METHODS - route.methods),
                              include_in_schema=False)  # fmt: skip
    # Requests, errors (by status class) and latency per route; a worker process each (serve.py sets
    # PROMETHEUS_MULTIPROC_DIR for several, so that any worker answers for all).
    # Its own registry: metrics of this app only, also where one process builds several (the tests).
    instrumentator = Instrumentator(excluded_handlers=["/metrics"], registry=CollectorRegistry())
    instrumentator.instrument(app).expose(app, include_in_schema=False)
    app.mount("/", StaticFiles(directory=str(PAGE), html=True), name="page")
    return app
