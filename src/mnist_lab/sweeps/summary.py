"""The summary of a sweep, written from its runs' result.json files when the multirun ends."""

from __future__ import annotations

import csv
import json
import math
import statistics
from pathlib import Path
from typing import Any, Iterable, Optional

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from mnist_lab import figures
from mnist_lab.logs import get_logger
from mnist_lab.sweeps.naming import names_run
from mnist_lab.training.run_folder import DONE, RESULT

log = get_logger(__name__)

COLUMNS = ("run", "status", "val_acc_best", "test_acc", "epochs", "wall_s", "error", "overrides", "checkpoint")
FOLD = "data.fold="  # the override that tells a setting's folds apart
SETTING_COLUMNS = ("setting", "folds", "val_acc_best_mean", "val_acc_best_std", "test_acc_mean", "test_acc_std", "runs")


def collect(sweep_dir: Path) -> list[dict[str, Any]]:
    rows = []
    for path in sorted(Path(sweep_dir).glob(f"*/{RESULT}")):
        result = json.loads(path.read_text())
        rows.append({"run": path.parent.name, **{k: result.get(k) for k in COLUMNS if k != "run"}})
    return rows


def _finished_value(row: dict, key: str) -> Optional[float]:
    """``row[key]`` of a run that finished with a number there, else None."""
    value = row.get(key)
    return value if row["status"] == "ok" and value is not None and not math.isnan(value) else None


def _key(row: dict, objective: str) -> tuple:
    value = _finished_value(row, objective)
    return (value is None, -value if value is not None else 0)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if value <= 1 else f"{value:.1f}"
    return "" if value is None else str(value).replace("|", "/").replace("\n", " ")


def write_summary(
    sweep_dir: Path, objective: str = "val_acc_best", log_params: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """summary.csv, summary.md and summary.png in ``sweep_dir``: one row per run, best first.

    ``log_params``: the parameters searched on a log scale, drawn on a log axis."""
    sweep_dir = Path(sweep_dir)
    rows = sorted(collect(sweep_dir), key=lambda r: _key(r, objective))
    if not rows:
        return rows
    _write_csv(sweep_dir / "summary.csv", COLUMNS, [{**r, "overrides": " ".join(r["overrides"] or [])} for r in rows])
    lines = _table(COLUMNS[:-2], rows)
    # Seeds or repeats of one recipe: the mean and spread are the result, not the best run.
    lines += [f"\n{key}: {text}" for key in (objective, "test_acc") if (text := spread(rows, key))]
    grouped = settings(rows, objective)
    if grouped:  # k-fold runs: a setting's result is its mean over its folds
        _write_csv(sweep_dir / "folds.csv", SETTING_COLUMNS, grouped)
        lines = _fold_lines(grouped, objective, sweep_dir) + ["", "Every run:", ""] + lines
    (sweep_dir / "summary.md").write_text("\n".join(lines) + "\n")
    plotted = grouped or rows
    params = _swept_values(plotted)
    if params:
        values = [r.get(f"{objective}_mean", r.get(objective)) for r in plotted]
        pruned = [r.get("status") == "pruned" for r in plotted]
        name = f"{objective} (mean over folds)" if grouped else objective
        figures.save(figures.objective_plot(params, values, name, log_params, pruned), sweep_dir / "summary.png")
    return rows


def _write_csv(path: Path, columns: Iterable[str], rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _table(columns: tuple[str, ...], rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return lines + ["| " + " | ".join(_cell(r[c]) for c in columns) + " |" for r in rows]


def settings(rows: list[dict[str, Any]], objective: str = "val_acc_best") -> list[dict[str, Any]]:
    """The runs that differ only in ``data.fold``, one row per setting: mean and std over its finished folds.

    Best first among the settings with the most folds finished (a pruned trial has fewer)."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        named = [o for o in row["overrides"] or [] if names_run(o.partition("=")[0])]
        if any(o.startswith(FOLD) for o in named):
            groups.setdefault(" ".join(o for o in named if not o.startswith(FOLD)), []).append(row)
    grouped = [_setting(setting, runs, objective) for setting, runs in groups.items()]
    return sorted(grouped, key=lambda g: (-g["folds"], -(g[f"{objective}_mean"] or 0)))


def _setting(setting: str, runs: list[dict], objective: str) -> dict[str, Any]:
    row: dict[str, Any] = {"setting": setting, "overrides": setting.split(), "runs": [r["run"] for r in runs]}
    for key in (objective, "test_acc"):
        values = [v for v in (_finished_value(r, key) for r in runs) if v is not None]
        row[f"{key}_mean"] = statistics.mean(values) if values else None
        row[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else None
        row.setdefault("folds", len(values))  # the folds that finished with an objective
    return row


def _mean_std(row: dict, key: str) -> str:
    mean, std = row[f"{key}_mean"], row[f"{key}_std"]
    return "" if mean is None else f"{mean:.4f} ± {std:.4f}" if std is not None else f"{mean:.4f}"


def _fold_lines(grouped: list[dict], objective: str, sweep_dir: Path) -> list[str]:
    """The settings table (mean ± std over folds), and the command that tests the best one's folds together."""
    shared = set.intersection(*(set(g["overrides"]) for g in grouped)) if len(grouped) > 1 else set()
    lines = ["Each setting over its folds (mean ± std), best first:", ""]
    lines += [f"| setting | folds | {objective} | test_acc |", "|---|---|---|---|"]
    for g in grouped:  # the overrides all settings share are left out: the table shows what differs
        setting = " ".join(o for o in g["overrides"] if o not in shared) or g["setting"]
        lines.append(f"| {setting} | {g['folds']} | {_mean_std(g, objective)} | {_mean_std(g, 'test_acc')} |")
    folders = ",".join(f"'{sweep_dir / run}'" for run in grouped[0]["runs"])
    lines += ["", f'Test the best setting\'s folds as one ensemble: python eval.py "ckpt_path=[{folders}]"']
    return lines


def spread(rows: list[dict], key: str) -> Optional[str]:
    """'mean ± sample std (min-max, n runs)' of ``key`` over the finished runs, or None below two runs."""
    values = [v for v in (_finished_value(r, key) for r in rows) if v is not None]
    if len(values) < 2:
        return None
    mean, std = statistics.mean(values), statistics.stdev(values)
    return f"{mean:.4f} ± {std:.4f} ({min(values):.4f}-{max(values):.4f}, {len(values)} runs)"


def _swept_values(rows: list[dict]) -> dict[str, list[Any]]:
    """Parameter -> value per row, for the overrides that differ between runs."""
    parsed = [dict(o.split("=", 1) for o in (r["overrides"] or []) if "=" in o and names_run(o)) for r in rows]
    keys = sorted({k for p in parsed for k in p})
    values = {k: [p.get(k) for p in parsed] for k in keys}
    return {k: v for k, v in values.items() if len(set(v)) > 1}


class SweepSummary(Callback):
    """Hydra callback: at the end of a multirun, tabulate every run, print the best, fail if any run failed."""

    def __init__(self, objective: str = "val_acc_best") -> None:
        self.objective = objective

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        searched = config.hydra.sweeper.get("params") or {}
        rows = write_summary(sweep_dir, self.objective, [k for k, v in searched.items() if "tag(log" in str(v)])
        if not rows:
            return
        log.info(f"\nSweep summary ({len(rows)} runs): {sweep_dir / 'summary.md'}")
        log.info((sweep_dir / "summary.md").read_text())
        best = rows[0]
        if best["status"] == "ok":
            log.info(
                f"Best run: {sweep_dir / best['run']}  {self.objective}={best[self.objective]:.4f}"
                f"  test_acc={_cell(best['test_acc'])}"
            )
        pruned = sum(r["status"] == "pruned" for r in rows)
        if pruned:
            log.info(f"{pruned} of {len(rows)} runs pruned (stopped early by the sweep's pruner; not failures).")
        failed = [r for r in rows if r["status"] not in DONE]
        if failed:
            raise SystemExit(
                f"{len(failed)} of {len(rows)} runs failed: " + "; ".join(f"{r['run']}: {r['error']}" for r in failed)
            )
