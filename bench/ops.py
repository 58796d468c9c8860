"""Tensor ops dispatched and host reads per steady-state training step: each model's run against a bare
loop over the same module, batches and optimizer (``tests/support/ops.py``).

    python bench/ops.py [override ...] [--runs model=logreg model=mlp model=cnn experiment=cnn_best]

On a GPU each op is a kernel launch and each host read a sync; small models there are launch-bound, so
the extra ops per step are the project's overhead on the hardware people train on.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # support: what the tests generate and run

from mnist_lab.building import build  # noqa: E402
from mnist_lab.resolvers import register_resolvers  # noqa: E402
from mnist_lab.training.run import train  # noqa: E402
from support import compose_config  # noqa: E402
from support.ops import FIRST, LAST, CountStepOps, bare_loop_ops  # noqa: E402

STEADY = [f"trainer.max_steps={LAST + 1}", "trainer.limit_val_batches=0", "test=false"]


def measure(choice: str, overrides: list[str]) -> dict:
    """The run's and the bare loop's ops per step for one ``model=``/``experiment=`` choice."""
    with tempfile.TemporaryDirectory() as out:
        cfg = compose_config(choice, *STEADY, *overrides, f"output_dir={out}")
        counter = CountStepOps()
        _, objects = train(cfg, callbacks=[counter])
        bare = bare_loop_ops(
            build(cfg.model).to(objects["model"].device), objects["datamodule"], str(cfg.trainer.precision)
        )
    extra = counter.mode.ops.copy()
    extra.subtract(bare.ops)
    return {
        "run": choice,
        "project": counter.per_step,
        "bare": bare.count / (LAST - FIRST),
        "reads": counter.reads_per_step,
        "extra_ops": {k: v / (LAST - FIRST) for k, v in extra.most_common(8) if v > 0},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", default=["model=logreg", "model=mlp", "model=cnn", "experiment=cnn_best"])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run, e.g. trainer=gpu")
    args = parser.parse_args()
    register_resolvers()
    rows = [measure(choice, args.overrides) for choice in args.runs]
    print("\n| run | project ops/step | bare loop ops/step | extra | host reads/step |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['run']} | {r['project']:.1f} | {r['bare']:.1f} | {r['project'] - r['bare']:.1f} | {r['reads']:.2f} |"
        )
    for r in rows:
        print(f"{r['run']}: most extra ops per step: " + ", ".join(f"{k} {v:.1f}" for k, v in r["extra_ops"].items()))


if __name__ == "__main__":
    main()
