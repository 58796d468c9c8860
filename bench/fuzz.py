"""No generated image makes the reading path fail but with an input error: a larger fuzz than the tests'.

    python bench/fuzz.py ckpt_path=<file.ckpt> [n=500] [seed=1]

Makes ``n`` images with tests/support/fuzz_images.py (4-40 px digits enlarged to 28-1000 px, any contrast,
blur, noise and page, odd files) and reads each as predict.py and serve.py do. Prints the refused count,
each failure, and the time; exits 1 if any image failed. The tests read 120 (tests/test_reading.py).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # support: what the tests generate

from mnist_lab.data.mnist import load_shipped  # noqa: E402
from mnist_lab.errors import InputError  # noqa: E402
from mnist_lab.inference.backends import load_network  # noqa: E402
from mnist_lab.inference.reading import read_image  # noqa: E402
from support.fuzz_images import fuzz_images  # noqa: E402

MAX_PIXELS = 4_000_000  # the tests' limit: larger fuzz images are refused before decoding, as predict.py does


def main() -> None:
    args = dict(arg.split("=", 1) for arg in sys.argv[1:])
    network = load_network(args["ckpt_path"])
    start = time.perf_counter()
    images = fuzz_images(load_shipped()["test_x"], int(args.get("n", 500)), seed=int(args.get("seed", 1)))
    refused, failed = 0, []
    for name, data in images:
        try:
            read_image(network, data, MAX_PIXELS)
        except InputError:
            refused += 1
        except Exception as err:  # noqa: BLE001 - what the fuzz looks for
            failed.append(f"{name}: {type(err).__name__}: {err}")
    print(f"{len(images)} images in {time.perf_counter() - start:.0f} s: {refused} refused, {len(failed)} failed")
    if failed:
        sys.exit("\n".join(failed))


if __name__ == "__main__":
    main()
