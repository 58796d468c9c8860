"""How often predict.py's preprocessing reads user digits right: photos, drawings, the page's canvas, soft scans.

    python bench/reading.py ckpt_path=<file.ckpt> [n=1000] [save=sheet.png]

Renders MNIST test digits the network never trained on as phone photos (tests/support/photos.py), drawings
and canvas drawings (drawings.py), and soft, blurry scans shrunk to 8, 10, 12 and 28 px (soft.py: digits 0-299),
prepares each as predict.py does, and classifies them. ``save`` writes the 28x28 inputs of the first 12 of each
set, as the network saw them, to a PNG, one row a set.
"""

from __future__ import annotations

import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import torch
from torchvision.utils import save_image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # support: what the tests generate and run

from mnist_lab.data.mnist import load_shipped  # noqa: E402
from mnist_lab.inference.backends import Network  # noqa: E402
from mnist_lab.inference.preprocess import InputError, open_image, to_mnist  # noqa: E402
from mnist_lab.models.classifier import load_classifier  # noqa: E402
from support.drawings import write_canvas_drawings, write_drawings  # noqa: E402
from support.photos import write_photos  # noqa: E402
from support.soft_digits import write_soft  # noqa: E402

SOFT_DIGITS = 300  # the experiment: test digits 0-299
SOFT_SIDES = (8, 10, 12, 28)
SHOWN = 12


def accuracy(network: Network, files: list[tuple[Path, int]]) -> tuple[float, int, torch.Tensor]:
    """Share predicted right (an input with no digit found counts as wrong), how many had none, the inputs."""
    inputs, labels, missing = [], [], 0
    for path, label in files:
        try:
            inputs.append(to_mnist(open_image(path, 40_000_000))[None])  # one channel
            labels.append(label)
        except InputError:
            missing += 1
    x = torch.stack(inputs)
    hits = int((network.probabilities(x).argmax(-1) == torch.tensor(labels)).sum())
    return hits / len(files), missing, x


def main() -> None:
    args = dict(arg.split("=", 1) for arg in sys.argv[1:])
    network, n = Network(load_classifier(args["ckpt_path"])), int(args.get("n", 1000))
    test = load_shipped()
    sets = {"photos": (write_photos, n), "drawings": (write_drawings, n), "canvas": (write_canvas_drawings, n)}
    sets |= {f"soft s={s}": (partial(write_soft, side=s), SOFT_DIGITS) for s in SOFT_SIDES}
    shown = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, (write, count)) in enumerate(sets.items()):
            files = write(test["test_x"][:count], test["test_y"][:count], folder=Path(tmp) / str(i))
            start = time.perf_counter()
            acc, missing, x = accuracy(network, files)
            ms = 1000 * (time.perf_counter() - start) / count
            print(f"{name:<10} {count:>5} images: {100 * acc:5.1f} % right, {missing} no digit, {ms:.0f} ms an image")
            shown.append(x[:SHOWN])
    if "save" in args:
        save_image(torch.cat(shown), args["save"], nrow=SHOWN, padding=2, pad_value=0.5)


if __name__ == "__main__":
    main()
