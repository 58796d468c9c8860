"""Host reads (host syncs on a GPU) per training step of a run of this project, and where they happen.

    python bench/host_reads.py [override ...]          # default: the default CNN, 100 steps

Counts ``aten._local_scalar_dense`` calls (``.item()``, ``float(t)``, ``bool(t)``) during the
training epochs, on whatever device the run uses; see ``mnist_lab/training/host_syncs.py``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # support: what the tests generate and run

from mnist_lab.resolvers import register_resolvers  # noqa: E402
from mnist_lab.training.run import train  # noqa: E402
from support import compose_config  # noqa: E402
from support.host_reads import CountHostReads  # noqa: E402


def main() -> None:
    register_resolvers()
    counter = CountHostReads(where=True)
    defaults = [
        "trainer.max_steps=100",
        "trainer.limit_val_batches=0",
        "test=false",
        "callbacks.progress_bar.refresh_rate=20",
    ]
    with tempfile.TemporaryDirectory() as out:
        train(compose_config(*defaults, *sys.argv[1:], f"output_dir={out}"), callbacks=[counter])
    print(f"\n{counter.reads.count} host reads in {counter.steps} training steps: {counter.per_step:.3f} per step")
    for site, n in counter.reads.sites.most_common():
        print(f"{n:>6}  {site}")


if __name__ == "__main__":
    main()
