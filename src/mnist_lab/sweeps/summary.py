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
from mnist_lab.sweeps.naming import names_run, short_value
from mnist_lab.training.run_folder import DONE, RESULT

log = get_logger(__name__)

COLUMNS = ("run", "status", "val_acc_best", "test_acc", "epochs", "wall_s", "error", "overrides", "checkpoint")
# Overrides that repeat a setting rather than change it: a setting's result is its mean over them.
REPLICATES = {"data.fold": "folds", "seed": "seeds"}
FOLDS = "data.folds"  # how many folds a setting has; fewer finished: its trial was pruned (or a fold failed)
SETTING_COLUMNS = (
    "setting",
    "status",
    "finished",
    "val_acc_best_mean",
    "val_acc_best_std",
    "test_acc_mean",
    "test_acc_std",
    "runs",
)


def collect(sweep_dir: Path, more: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Each run's row: the COLUMNS and the keys ``more`` of its result.json."""
    rows = []
    for path in sorted(Path(sweep_dir).glob(f"*/{RESULT}")):
        result = json.loads(path.read_text())
        rows.append({"run": path.parent.name, **{k: result.get(k) for k in (*COLUMNS, *more) if k != "run"}})
    return rows


def pareto(rows: list[dict[str, Any]], goals: list[tuple[str, str]]) -> list[bool]:
    """Whether each row is Pareto-optimal among the finished runs for ``goals`` ((key, maximize|minimize), ...):
    no other run is as good in every goal and better in one."""
    signs = [1 if direction == "maximize" else -1 for _, direction in goals]
    points = [
        None
        if any(_finished_value(r, key) is None for key, _ in goals)
        else [s * r[k] for s, (k, _) in zip(signs, goals)]
        for r in rows
    ]

    def dominated(p: list[float]) -> bool:
        return any(q is not None and q != p and all(a >= b for a, b in zip(q, p)) for q in points)

    return [p is not None and not dominated(p) for p in points]


def write_pareto_summary(sweep_dir: Path, goals: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """summary.csv, summary.md and summary.png of a search of several objectives: the Pareto-optimal runs
    first (``pareto`` yes), then the others, each by its first objective."""
    sweep_dir, names = Path(sweep_dir), [key for key, _ in goals]
    rows = collect(sweep_dir, names)
    for row, best in zip(rows, pareto(rows, goals)):
        row["pareto"] = "yes" if best else ""
    first, direction = goals[0]
    rows.sort(key=lambda r: (not r["pareto"], _key(r, first) if direction == "maximize" else _key_min(r, first)))
    if not rows:
        return rows
    columns = ("run", "pareto", "status", *dict.fromkeys([*names, "test_acc"]), "epochs", "wall_s", "error")
    _write_csv(sweep_dir / "summary.csv", (*columns, "overrides", "checkpoint"),
               [{**r, "overrides": " ".join(r["overrides"] or [])} for r in rows])  # fmt: skip
    front = [r for r in rows if r["pareto"]]
    head = [f"Pareto front: {len(front)} of {len(rows)} runs, " + ", ".join(f"{k} ({d})" for k, d in goals), ""]
    (sweep_dir / "summary.md").write_text("\n".join(head + _table(columns, rows)) + "\n")
    drawn = [r for r in rows if all(_finished_value(r, k) is not None for k in names[:2])]
    if len(names) >= 2 and drawn:
        points = [(r[names[0]], r[names[1]]) for r in drawn]
        title = f"{sweep_dir.name}: {len(front)} of {len(rows)} runs on the Pareto front"
        figures.save(
            figures.pareto_plot(points, [bool(r["pareto"]) for r in drawn], names, title), sweep_dir / "summary.png"
        )
    return rows


def _key_min(row: dict, objective: str) -> tuple:
    value = _finished_value(row, objective)
    return (value is None, value if value is not None else 0)


def _finished_value(row: dict, key: str) -> Optional[float]:
    """``row[key]`` of a run that finished with a number there, else None."""
    value = row.get(key)
    return value if row["status"] == "ok" and value is not None and not math.isnan(value) else None


def _key(row: dict, objective: str) -> tuple:
    value = _finished_value(row, objective)
    return (value is None, -value if value is not None else 0)


# A number reads by its column, not by its value: seconds to a tenth, counts whole, anything else (accuracies,
# losses) to four places; a pruned run's 0.9 s is not an accuracy.
FORMATS = {
    "wall_s": "{:.1f}",
    "epochs": "{:.0f}",
    "finished": "{:.0f}",
    "parameters": "{:,.0f}",
    "ms_per_image": "{:.3f}",
}


def _cell(value: Any, column: str = "") -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return FORMATS.get(column, "{:.4f}").format(value)
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
    grouped, replicates = settings(rows, objective), replicated(rows)
    if grouped:  # folds or seeds: a setting's result is its mean over them, not its best run
        _write_csv(sweep_dir / "settings.csv", SETTING_COLUMNS, grouped)
        head = _setting_lines(grouped, objective, replicates, sweep_dir)
        if len(grouped) == 1:  # one recipe repeated: the spread is the result
            head += [f"\n{key}: {text}" for key in (objective, "test_acc") if (text := spread(rows, key))]
        lines = head + ["", "Every run:", ""] + lines
    (sweep_dir / "summary.md").write_text("\n".join(lines) + "\n")
    plotted = grouped or rows
    params = _swept_values(plotted)
    if params:
        mean = f"{objective}_mean"
        values = [r[mean] if grouped else r.get(objective) for r in plotted]
        errors = [r[f"{objective}_std"] for r in grouped]
        pruned = [r.get("status", "").startswith("pruned") for r in plotted]
        name = f"{objective} (mean ± std over {' and '.join(replicates)})" if grouped else objective
        title = f"{sweep_dir.name}: {len(rows)} runs" + (f", {len(grouped)} settings" if grouped else "")
        figure = figures.objective_plot(params, values, name, log_params, pruned, errors, title)
        figures.save(figure, sweep_dir / "summary.png")
    return rows


def _write_csv(path: Path, columns: Iterable[str], rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _table(columns: tuple[str, ...], rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return lines + ["| " + " | ".join(_cell(r[c], c) for c in columns) + " |" for r in rows]


def _named(row: dict) -> list[str]:
    return [o for o in row["overrides"] or [] if names_run(o.partition("=")[0])]


def replicated(rows: list[dict[str, Any]]) -> list[str]:
    """What the runs repeat their settings over: "folds", "seeds" (the replicate keys whose values differ)."""
    values: dict[str, set] = {key: set() for key in REPLICATES}
    for row in rows:
        for key, _, value in (o.partition("=") for o in _named(row)):
            if key.lstrip("+") in values:
                values[key.lstrip("+")].add(value)
    return [noun for key, noun in REPLICATES.items() if len(values[key]) > 1]


def settings(rows: list[dict[str, Any]], objective: str = "val_acc_best") -> list[dict[str, Any]]:
    """The runs that differ only in their folds or seeds, one row per setting: mean and std over its finished runs,
    and its status: ok, "pruned after k of K folds", or failed.

    Best first among the settings with the most runs finished (a pruned trial has fewer folds)."""
    varying = {key for key, noun in REPLICATES.items() if noun in replicated(rows)}
    if not varying:
        return []
    groups: dict[str, list[dict]] = {}
    for row in rows:
        kept = [o for o in _named(row) if o.partition("=")[0].lstrip("+") not in varying]
        groups.setdefault(" ".join(kept), []).append(row)
    grouped = [_setting(setting, runs, objective) for setting, runs in groups.items()]
    return sorted(grouped, key=lambda g: (-g["finished"], -(g[f"{objective}_mean"] or 0)))


def _setting(setting: str, runs: list[dict], objective: str) -> dict[str, Any]:
    row: dict[str, Any] = {"setting": setting, "overrides": setting.split(), "runs": [r["run"] for r in runs]}
    for key in (objective, "test_acc"):
        values = [v for v in (_finished_value(r, key) for r in runs) if v is not None]
        row[f"{key}_mean"] = statistics.mean(values) if values else None
        row[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else None
        row.setdefault("finished", len(values))  # the runs that finished with an objective
    row["status"] = _setting_status(runs, row["finished"])
    return row


def _setting_status(runs: list[dict], finished: int) -> str:
    """failed; pruned; "pruned after k of K folds" where a search's fold pruner stopped the trial; else ok."""
    statuses = {r["status"] for r in runs}
    if statuses - set(DONE):
        return "failed"
    if "pruned" in statuses:
        return "pruned"
    given = {o for r in runs for o in r["overrides"] or [] if o.startswith((FOLDS + "=", "trial="))}
    totals = {o.partition("=")[2] for o in given if o.startswith(FOLDS + "=")}
    if len(totals) == 1 and len(given) == 2 and (total := totals.pop()).isdigit() and finished < int(total):
        return f"pruned after {finished} of {total} folds"  # one trial (sweep=optuna) that stopped early
    return "ok"


def _mean_std(row: dict, key: str) -> str:
    mean, std = row[f"{key}_mean"], row[f"{key}_std"]
    return "" if mean is None else f"{mean:.4f} ± {std:.4f}" if std is not None else f"{mean:.4f}"


def _shown(override: str) -> str:
    """An override as the run folders name it: floats to four significant digits."""
    key, _, value = override.partition("=")
    return f"{key}={short_value(value)}"


def _setting_lines(grouped: list[dict], objective: str, replicates: list[str], sweep_dir: Path) -> list[str]:
    """The settings table (mean ± std over folds or seeds), and for folds the command that tests the best
    setting's fold models together."""
    shared = set.intersection(*(set(g["overrides"]) for g in grouped)) if len(grouped) > 1 else set()
    over = " and ".join(replicates)
    lines = [f"Each setting over its {over} (mean ± std), best first:", ""]
    lines += [f"| setting | status | {over} | {objective} | test_acc |", "|---|---|---|---|---|"]
    for g in grouped:  # the overrides all settings share are left out: the table shows what differs
        setting = " ".join(_shown(o) for o in g["overrides"] if o not in shared) or g["setting"] or "defaults"
        lines.append(
            f"| {setting} | {g['status']} | {g['finished']} | {_mean_std(g, objective)} | {_mean_std(g, 'test_acc')} |"
        )
    if "folds" in replicates:
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
        names = list(config.hydra.sweeper.get("objectives") or [])
        if len(names) > 1:
            self._several(sweep_dir, list(zip(names, config.hydra.sweeper.direction)))
            return
        searched = config.hydra.sweeper.get("params") or {}
        rows = write_summary(sweep_dir, self.objective, [k for k, v in searched.items() if "tag(log" in str(v)])
        if not rows:
            return
        log.info(f"\nSweep summary ({len(rows)} runs): {sweep_dir / 'summary.md'}")
        log.info((sweep_dir / "summary.md").read_text())
        best, grouped = rows[0], settings(rows, self.objective)
        if grouped and grouped[0][f"{self.objective}_mean"] is not None:  # the unit is a setting, not one of its runs
            top = grouped[0]
            log.info(
                f"Best setting: {top['setting'] or 'defaults'}  {self.objective}={_mean_std(top, self.objective)}"
                f"  test_acc={_mean_std(top, 'test_acc')}  over {top['finished']} {' and '.join(replicated(rows))}"
            )
        elif best["status"] == "ok":
            log.info(
                f"Best run: {sweep_dir / best['run']}  {self.objective}={best[self.objective]:.4f}"
                f"  test_acc={_cell(best['test_acc'])}"
            )
        pruned = sum(r["status"] == "pruned" for r in rows)
        if pruned:
            log.info(f"{pruned} of {len(rows)} runs pruned (stopped early by the sweep's pruner; not failures).")
        stopped = [g for g in grouped if g["status"].startswith("pruned after")]
        if stopped:
            log.info(f"{len(stopped)} of {len(grouped)} settings pruned between folds (not failures).")
        _fail_if_any_failed(rows)

    def _several(self, sweep_dir: Path, goals: list[tuple[str, str]]) -> None:
        rows = write_pareto_summary(sweep_dir, goals)
        if not rows:
            return
        log.info(f"\nSweep summary ({len(rows)} runs): {sweep_dir / 'summary.md'}")
        log.info((sweep_dir / "summary.md").read_text())
        _fail_if_any_failed(rows)


def _fail_if_any_failed(rows: list[dict[str, Any]]) -> None:
    failed = [r for r in rows if r["status"] not in DONE]
    if failed:
        raise SystemExit(
            f"{len(failed)} of {len(rows)} runs failed: " + "; ".join(f"{r['run']}: {r['error']}" for r in failed)
        )
