"""A run's folder: its result.json (written when it starts, rewritten when it finishes, fails or is
interrupted), and what continuing it needs (its config and the checkpoint to continue from)."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Optional

from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from mnist_lab.errors import ConfigError
from mnist_lab.migration import migrate

RESULT = "result.json"
PRUNED_AT = "pruned_at_epoch"  # what a pruned run logs (TensorBoard's HPARAMS tab shows it)
DONE = ("ok", "pruned")  # statuses of a run that is not run again when its sweep is
RESULTS = ("val_acc_best", "test_acc", "test_loss")  # what a finished run reports (and TensorBoard's HPARAMS tab shows)
# What else a finished run reports, for a search of several objectives: its network's size, and its speed
# (measured only when a search asks for it).
MEASURES = ("parameters", "ms_per_image")


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)  # atomic: a reader never sees half a file


def read_result(run_dir: Path) -> dict[str, Any]:
    """A run's result.json; empty where it has none (yet)."""
    try:
        return json.loads((Path(run_dir) / RESULT).read_text())
    except (OSError, ValueError):
        return {}


def finished_result(run_dir: Path) -> Optional[dict]:
    """The stored result of a run that completed, or None."""
    result = read_result(run_dir)
    return result if result.get("status") in DONE else None


class RunRecord:
    """Writes ``status: running`` now; ``finish`` or ``fail`` add the outcome and the wall time."""

    def __init__(self, run_dir: Path, overrides: list[str], resumed: bool = False) -> None:
        self.path = Path(run_dir) / RESULT
        self.started = time.perf_counter()
        now = time.strftime("%Y-%m-%d %H:%M:%S")
        self.record: dict[str, Any] = {"overrides": overrides, "status": "running", "started": now}
        if resumed:  # the record still says what the run is: its own overrides, and when it was continued
            before = read_result(self.path.parent)
            overrides = before.get("overrides") or OmegaConf.load(Path(run_dir) / ".hydra" / "overrides.yaml")
            self.record.update(overrides=list(overrides), started=before.get("started", now))
            self.record["resumed"] = [*before.get("resumed", []), now]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json(self.path, self.record)

    def _write(self, status: str, **fields: Any) -> None:
        write_json(self.path, {**self.record, "status": status, "wall_s": time.perf_counter() - self.started, **fields})

    def finish(self, metrics: dict[str, float], epochs: int, checkpoint: Optional[str]) -> None:
        measured = {key: metrics[key] for key in MEASURES if key in metrics}
        self._write(
            "ok", **{key: metrics.get(key) for key in RESULTS}, **measured, epochs=epochs, checkpoint=checkpoint
        )

    def fail(self, err: BaseException) -> str:
        """Record ``err`` (call inside its ``except``) and return the status: interrupted, pruned or failed."""
        if pruned(err):  # not an error: the sweep's pruner stopped a run that was not going to win
            metrics = getattr(err, "metrics", {})
            self._write("pruned", **{key: metrics.get(key) for key in RESULTS}, epochs=getattr(err, "epochs", None))
            return "pruned"
        stopped_by = stop_signal(err)
        if stopped_by:
            self._write("interrupted", error=f"stopped by {stopped_by}", signal=stopped_by)
            return "interrupted"
        self._write("failed", error=f"{type(err).__name__}: {err}", traceback=traceback.format_exc())
        return "failed"


def stop_signal(err: BaseException) -> Optional[str]:
    """What stopped a run from outside, by the exception it ended with: SIGTERM (``kill``, ``timeout``, a
    SLURM preemption), SIGINT (Ctrl-C), or "exit" (``sys.exit`` in a signal handler, e.g. submitit's requeue);
    None for an error of the run's own."""
    if isinstance(err, SIGTERMException):  # Lightning stops at the next step on SIGTERM
        return "SIGTERM"
    # Lightning turns Ctrl-C into SystemExit(1) after its graceful shutdown.
    if isinstance(err, KeyboardInterrupt) or isinstance(err.__context__, KeyboardInterrupt):
        return "SIGINT"
    return "exit" if isinstance(err, SystemExit) else None


def exit_status(stopped_by: str) -> int:
    """The shell's exit status for a process stopped by ``stopped_by``: 128 + the signal's number (143, 130)."""
    return 128 + signal.Signals[stopped_by] if stopped_by.startswith("SIG") else 1


def pruned(err: BaseException) -> bool:
    """Whether ``err`` is Optuna's word that the run's trial was pruned."""
    optuna = sys.modules.get("optuna")  # only a run that loaded Optuna can be pruned
    return optuna is not None and isinstance(err, optuna.TrialPruned)


def load_run_config(run_dir: str | Path) -> DictConfig:
    """The config an earlier run was started with (its .hydra/config.yaml), to continue it."""
    path = Path(run_dir) / ".hydra" / "config.yaml"
    if not path.is_file():
        raise ConfigError(
            f"resume={run_dir} is not a run folder: it has no .hydra/config.yaml (look in outputs/runs/)."
        )
    cfg = migrate(OmegaConf.load(path))  # a folder written before a class moved names where it was
    cfg.resume = str(run_dir)
    return cfg


def resume_checkpoint(run_dir: Path) -> Optional[Path]:
    """Where an unfinished run in ``run_dir`` continues from: the last finished epoch, else the save made when it
    was stopped (Lightning's SLURM requeue save, hpc_ckpt_<n>.ckpt, or ours on Ctrl-C or SIGTERM)."""
    hpc = sorted(run_dir.glob("hpc_ckpt_*.ckpt"), key=lambda p: int(p.stem.rsplit("_", 1)[-1]))
    for path in (run_dir / "checkpoints" / "last.ckpt", *hpc[-1:], run_dir / "checkpoints" / "interrupted.ckpt"):
        if path.is_file():
            return path
    return None
