"""What a trial's heartbeat costs: one stamp into a journal file, and training steps with the thread beating.

    python bench/heartbeat.py [--steps 300] [--every 0.05] [--repeats 3]

The thread stamps every ``--every`` seconds (the default setting is 60 s: this is 1200x as often), while a
logreg trains ``--steps`` steps on this machine's CPU, alternately with and without it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import optuna

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # support: what the tests generate and run

from mnist_lab.building import build  # noqa: E402
from mnist_lab.resolvers import register_resolvers  # noqa: E402
from mnist_lab.sweeps.heartbeat import Beat, stamp  # noqa: E402
from support import compose_config  # noqa: E402


def journal(folder: Path) -> optuna.Study:
    backend = optuna.storages.journal.JournalFileBackend(str(folder / "study.journal"))
    return optuna.create_study(study_name="bench", storage=optuna.storages.JournalStorage(backend), load_if_exists=True)


def fit_s(steps: int) -> float:
    trainer = L.Trainer(
        max_steps=steps,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    cfg = compose_config("model=logreg", "data.val_size=0", "output_dir=.")
    model, datamodule = build(cfg.model), build(cfg.data)
    started = time.perf_counter()
    trainer.fit(model, datamodule=datamodule)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--every", type=float, default=0.05)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    register_resolvers()
    folder = Path(tempfile.mkdtemp())
    study = journal(folder)
    trial = study.ask()
    started = time.perf_counter()
    for _ in range(200):
        stamp(study, trial.number)
    print(f"one stamp into a journal file: {(time.perf_counter() - started) / 200 * 1e3:.2f} ms")
    fit_s(50)  # warm-up: data read, kernels
    plain, beating = [], []
    for _ in range(args.repeats):
        plain.append(fit_s(args.steps))
        with Beat(lambda: journal(folder), lambda: [trial.number], args.every):
            beating.append(fit_s(args.steps))
    ms = {name: statistics.median(t) / args.steps * 1e3 for name, t in (("without", plain), ("with", beating))}
    print(
        f"per step, median of {args.repeats}: {ms['without']:.3f} ms without, {ms['with']:.3f} ms with a stamp"
        f" every {args.every} s ({ms['with'] / ms['without']:.3f}x)"
    )


if __name__ == "__main__":
    main()
