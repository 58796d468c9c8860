"""The summary of a sweep, when its multirun ends: its tables (``sweeps.tables``, read from its runs' result.json
files), the best setting or run, and the sweep failed where any run failed.

Hydra builds its callbacks for every run, a single one too: pandas is imported only once a sweep ends."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from mnist_lab.logs import get_logger
from mnist_lab.training.run_folder import DONE

if TYPE_CHECKING:
    import pandas as pd

log = get_logger(__name__)


class SweepSummary(Callback):
    """Hydra callback: at the end of a multirun, tabulate every run, print the best, fail if any run failed."""

    def __init__(self, objective: str = "val_acc_best") -> None:
        self.objective = objective

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from mnist_lab.sweeps import tables

        sweep_dir, sweeper = Path(config.hydra.sweep.dir), config.hydra.sweeper
        names = list(sweeper.get("objectives") or [])
        if len(names) > 1:
            runs = tables.write_pareto_summary(sweep_dir, list(zip(names, sweeper.direction)))
        else:
            log_params = [k for k, v in (sweeper.get("params") or {}).items() if "tag(log" in str(v)]
            runs = tables.write_summary(sweep_dir, self.objective, log_params)
        if runs.empty:
            return
        log.info(f"\nSweep summary ({len(runs)} runs): {sweep_dir / 'summary.md'}")
        log.info((sweep_dir / "summary.md").read_text())
        if len(names) <= 1:
            self._best(runs, sweep_dir)
        failed = runs[~runs["status"].isin(DONE)]
        if len(failed):
            errors = "; ".join(f"{r.run}: {r.error}" for r in failed.itertuples())
            raise SystemExit(f"{len(failed)} of {len(runs)} runs failed: {errors}")

    def _best(self, runs: pd.DataFrame, sweep_dir: Path) -> None:
        """The best setting (or run), and how many were pruned."""
        from mnist_lab.sweeps import tables

        best, grouped, objective = runs.iloc[0], tables.settings(runs, self.objective), self.objective
        if len(grouped) and grouped[f"{objective}_mean"].notna().iloc[0]:  # the unit is a setting, not one of its runs
            top = grouped.iloc[0]
            log.info(
                f"Best setting: {top['setting'] or 'defaults'}  {objective}={tables.mean_std(top, objective)}"
                f"  test_acc={tables.mean_std(top, 'test_acc')}  over {top['finished']}"
                f" {' and '.join(tables.replicated(runs))}"
            )
        elif best["status"] == "ok":
            log.info(
                f"Best run: {sweep_dir / best['run']}  {objective}={best[objective]:.4f}"
                f"  test_acc={tables.cell(best['test_acc'])}"
            )
        pruned = int((runs["status"] == "pruned").sum())
        if pruned:
            log.info(f"{pruned} of {len(runs)} runs pruned (stopped early by the sweep's pruner; not failures).")
        stopped = int(grouped["status"].str.startswith("pruned after").sum()) if len(grouped) else 0
        if stopped:
            log.info(f"{stopped} of {len(grouped)} settings pruned between folds (not failures).")
