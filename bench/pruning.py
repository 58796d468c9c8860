"""What pruning buys: the same TPE search (same sampler seed) with each pruner, on this machine.

    python bench/pruning.py [--model mlp] [--trials 30] [--epochs 8] [--pruners none median hyperband]
                            [--folds K] [--out outputs/bench/pruning] [override ...]

Each pruner runs ``train.py sweep=optuna`` in its own sweep folder, one after the other. The table:
the sweep's wall time, the epochs its runs trained, the best val_acc_best and that run's test_acc,
and the sweep's overhead (its wall time over the sum of its runs' own wall_s: start-up, Optuna).
With ``--folds K`` each trial trains K folds and ``--pruners`` are fold pruners (none, median, wilcoxon):
the best is the best setting's fold mean.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # support: what the tests generate and run

from omegaconf import OmegaConf  # noqa: E402

from support import ROOT  # noqa: E402


def sweep(
    out: Path, model: str, trials: int, epochs: int, pruner: str, folds: int | None, overrides: list[str]
) -> dict[str, float]:
    sweep_dir = out / pruner
    pruning = (
        [f"data.folds={folds}", f"hydra/sweeper/fold_pruner={pruner}"] if folds else [f"hydra/sweeper/pruner={pruner}"]
    )
    shutil.rmtree(sweep_dir, ignore_errors=True)
    command = [
        sys.executable,
        str(ROOT / "train.py"),
        "sweep=optuna",
        f"model={model}",
        *pruning,
        f"hydra.sweeper.n_trials={trials}",
        f"trainer.max_epochs={epochs}",
        "callbacks.weight_histograms.every_n_epochs=0",
        "callbacks.progress_bar.refresh_rate=0",
        f"hydra.sweep.dir={sweep_dir}",
        *overrides,
    ]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, cwd=out)
    wall = time.perf_counter() - started
    with (sweep_dir / "summary.csv").open() as f:
        rows = list(csv.DictReader(f))
    if folds:
        with (sweep_dir / "settings.csv").open() as f:
            best = list(csv.DictReader(f))[0]  # the best of the settings with every fold
        best = {"val_acc_best": best["val_acc_best_mean"], "test_acc": best["test_acc_mean"]}
    else:
        best = rows[0]  # best first
    trials_ended = OmegaConf.load(sweep_dir / "optimization_results.yaml").trials
    return {
        "wall_s": wall,
        "epochs": sum(int(r["epochs"] or 0) for r in rows),
        "pruned": trials_ended.get("pruned", 0),
        "val_acc_best": float(best["val_acc_best"]),
        "test_acc": float(best["test_acc"]),
        "overhead": wall / sum(float(r["wall_s"]) for r in rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--pruners", nargs="+", default=["none", "median", "hyperband"])
    parser.add_argument("--folds", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path("outputs/bench/pruning"))
    args, overrides = parser.parse_known_args()
    args.out.mkdir(parents=True, exist_ok=True)
    each = f"{args.folds} folds of {args.epochs} epochs" if args.folds else f"{args.epochs} epochs"
    print(f"{args.model}, {args.trials} trials of {each}, TPE seed 123")
    print("| pruner | wall (s) | epochs trained | trials pruned | best val_acc_best | its test_acc | overhead |")
    print("|---|---|---|---|---|---|---|")
    for pruner in args.pruners:
        r = sweep(args.out.resolve(), args.model, args.trials, args.epochs, pruner, args.folds, overrides)
        print(
            f"| {pruner} | {r['wall_s']:.0f} | {r['epochs']} | {r['pruned']} | {r['val_acc_best']:.4f} "
            f"| {r['test_acc']:.4f} | {r['overhead']:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
