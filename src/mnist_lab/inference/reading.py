"""One picture -> what the network reads: the one path predict.py, serve.py's API and its page share.

How a picture becomes the network's input is the training data's ``reading`` (in the checkpoint): ``digits``
finds pen strokes and makes them an MNIST digit, ``picture`` fits the whole picture gray and light on dark, as
Fashion-MNIST made its own, ``resized`` resizes it as a folder of images is read for training."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import torch

from mnist_lab.data.folder import fit_image
from mnist_lab.inference.backends import Network
from mnist_lab.inference.preprocess import open_image, to_mnist, to_picture

TRACEBACKS = logging.getLogger("mnist_lab.tracebacks")  # conf/hydra/default.yaml: to the run's log file only


@dataclass
class Reading:
    label: int
    name: str  # the class's name
    probabilities: torch.Tensor  # (classes,)
    seen: torch.Tensor  # (C, side, side) in [0, 1]: the image the network was given


def use_threads(threads: int) -> None:
    """Threads for one image: torch's and OpenCV's pools (a server reads several images side by side)."""
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)


def read_image(network: Network, source: Path | bytes, max_pixels: int) -> Reading:
    """Raises InputError (NotAnImage, ImageTooLarge) with the message a user sees for an image it cannot read."""
    rgb = open_image(source, max_pixels)
    side, channels, reading = (network.model.hparams[key] for key in ("image_size", "channels", "reading"))
    if reading == "resized":  # as a folder of images was read for training
        seen = fit_image(torch.from_numpy(rgb.copy()).permute(2, 0, 1), side, channels).float() / 255
    else:
        seen = (to_picture(rgb, side) if reading == "picture" else to_mnist(rgb))[None]
        seen = seen.expand(channels, -1, -1)
    probabilities = network.probabilities(seen[None])[0]
    label = int(probabilities.argmax())
    return Reading(label, network.model.classes[label], probabilities, seen)


def unexpected(name: str, err: Exception) -> str:
    """The error line of a failure that is not the image's fault (a bug); its traceback goes to the run's log."""
    TRACEBACKS.error(f"{name}: unexpected error", exc_info=err)
    return f"could not be read ({type(err).__name__}: {err}); a bug, not your image: the traceback is in the run's log"
