"""Host reads (host syncs on a GPU) per training step of a run of this project, and where they happen.

    python bench/host_reads.py [override ...]          # default: the default CNN, 100 steps

Counts ``aten._local_scalar_dense`` calls (``.item()``, ``float(t)``, ``bool(t)``) during the
training epochs, on whatever device the run uses; see ``mnist_lab/host_reads.py``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from hydra import compose, initialize_config_dir

from mnist_lab import training
from mnist_lab.resolvers import register_resolvers
from mnist_lab.host_reads import CountHostReads

CONF = Path(__file__).resolve().parents[1] / "conf"


def main() -> None:
    register_resolvers()
    counter = CountHostReads(where=True)
    build_trainer = training.build_trainer

    def with_counter(cfg):
        trainer = build_trainer(cfg)
        trainer.callbacks.append(counter)
        return trainer

    training.build_trainer = with_counter
    with tempfile.TemporaryDirectory() as out, initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        defaults = ["trainer.max_steps=100", "trainer.limit_val_batches=0", "test=false", "callbacks.progress_bar.refresh_rate=20"]
        training.train(compose("train", overrides=[*defaults, *sys.argv[1:], f"output_dir={out}"]))
    print(f"\n{counter.reads.count} host reads in {counter.steps} training steps: {counter.per_step:.3f} per step")
    for site, n in counter.reads.sites.most_common():
        print(f"{n:>6}  {site}")


if __name__ == "__main__":
    main()
