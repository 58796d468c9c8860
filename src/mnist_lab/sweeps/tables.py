"""A sweep's tables, from its runs' result.json files: a pandas table of the runs, best first, and where the runs
repeat a setting over folds or seeds, one of the settings; written as summary.csv, summary.md and summary.png."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np
import pandas as pd

from mnist_lab import figures
from mnist_lab.sweeps.naming import names_run, short_value
from mnist_lab.training.run_folder import DONE, RESULT

COLUMNS = ("run", "status", "val_acc_best", "test_acc", "epochs", "wall_s", "error", "overrides", "checkpoint")
# Overrides that repeat a setting rather than change it: a setting's result is its mean over them.
REPLICATES = {"data.fold": "folds", "seed": "seeds"}
FOLDS = "data.folds"  # how many folds a setting has; fewer finished: its trial was pruned (or a fold failed)
# A number reads by its column, not by its value: seconds to a tenth, counts whole, anything else (accuracies,
# losses) to four places; a pruned run's 0.9 s is not an accuracy.
FORMATS = {"wall_s": "{:.1f}", "epochs": "{:.0f}", "parameters": "{:,.0f}", "ms_per_image": "{:.3f}"}


def collect(sweep_dir: Path, more: Iterable[str] = ()) -> pd.DataFrame:
    """Each run's row: the COLUMNS and the keys ``more`` of its result.json, values as written (None kept)."""
    records = [{**json.loads(p.read_text()), "run": p.parent.name} for p in sorted(Path(sweep_dir).glob(f"*/{RESULT}"))]
    runs = pd.DataFrame(records, columns=list(dict.fromkeys([*COLUMNS, *more])), dtype=object)
    runs["overrides"] = [o if isinstance(o, list) else [] for o in runs["overrides"]]
    return runs


def finished(runs: pd.DataFrame, key: str) -> pd.Series:
    """``key`` of each run that finished with a number there; NaN for the others."""
    return pd.to_numeric(runs[key], errors="coerce").where(runs["status"] == "ok")


def best_first(runs: pd.DataFrame, key: str, maximize: bool = True) -> pd.DataFrame:
    """The runs by ``key``, best first, those without it last (in folder order)."""
    order = finished(runs, key).sort_values(ascending=not maximize, na_position="last", kind="stable").index
    return runs.loc[order].reset_index(drop=True)


def pareto(runs: pd.DataFrame, goals: list[tuple[str, str]]) -> np.ndarray:
    """Whether each run is Pareto-optimal among the finished runs for ``goals`` ((key, maximize|minimize), ...):
    no other run is as good in every goal and better in one."""
    signs = np.array([1.0 if direction == "maximize" else -1.0 for _, direction in goals])
    points = np.stack([finished(runs, key).to_numpy(float) for key, _ in goals], axis=1) * signs
    reached = ~np.isnan(points).any(axis=1)
    # [i, j]: run j is as good as run i in every goal and better in one (NaN compares False: never dominates).
    dominates = (points[None] >= points[:, None]).all(2) & (points[None] > points[:, None]).any(2)
    return reached & ~dominates.any(1)


def write_pareto_summary(sweep_dir: Path, goals: list[tuple[str, str]]) -> pd.DataFrame:
    """summary.csv, summary.md and summary.png of a search of several objectives: the Pareto-optimal runs
    first (``pareto`` yes), then the others, each by its first objective."""
    sweep_dir, names = Path(sweep_dir), [key for key, _ in goals]
    runs = collect(sweep_dir, names)
    if runs.empty:
        return runs
    runs["pareto"] = np.where(pareto(runs, goals), "yes", "")
    runs = best_first(runs, goals[0][0], goals[0][1] == "maximize")
    runs = runs.iloc[np.argsort(runs["pareto"] != "yes", kind="stable")].reset_index(drop=True)
    columns = ("run", "pareto", "status", *dict.fromkeys([*names, "test_acc"]), "epochs", "wall_s", "error")
    _write_csv(runs, sweep_dir / "summary.csv", (*columns, "overrides", "checkpoint"))
    front = runs[runs["pareto"] == "yes"]
    head = [f"Pareto front: {len(front)} of {len(runs)} runs, " + ", ".join(f"{k} ({d})" for k, d in goals), ""]
    (sweep_dir / "summary.md").write_text("\n".join(head + _table(runs, columns)) + "\n")
    drawn = runs[finished(runs, names[0]).notna() & finished(runs, names[1]).notna()]
    if len(drawn):
        title = f"{sweep_dir.name}: {len(front)} of {len(runs)} runs on the Pareto front"
        points = list(map(tuple, drawn[names[:2]].to_numpy(float)))
        plot = figures.pareto_plot(points, (drawn["pareto"] == "yes").tolist(), names, title)
        figures.save(plot, sweep_dir / "summary.png")
    return runs


def cell(value: Any, column: str = "") -> str:
    if isinstance(value, float) and math.isnan(value):
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return FORMATS.get(column, "{:.4f}").format(value)
    return "" if value is None else str(value).replace("|", "/").replace("\n", " ")


def write_summary(sweep_dir: Path, objective: str = "val_acc_best", log_params: Iterable[str] = ()) -> pd.DataFrame:
    """summary.csv, summary.md and summary.png in ``sweep_dir``: one row per run, best first.

    ``log_params``: the parameters searched on a log scale, drawn on a log axis."""
    sweep_dir = Path(sweep_dir)
    runs = best_first(collect(sweep_dir), objective)
    if runs.empty:
        return runs
    _write_csv(runs, sweep_dir / "summary.csv", COLUMNS)
    lines = _table(runs, COLUMNS[:-2])
    grouped, replicates = settings(runs, objective), replicated(runs)
    if len(grouped):  # folds or seeds: a setting's result is its mean over them, not its best run
        grouped.to_csv(sweep_dir / "settings.csv", index=False, columns=[c for c in grouped if c != "overrides"])
        head = _setting_lines(grouped, objective, replicates, sweep_dir)
        if len(grouped) == 1:  # one recipe repeated: the spread is the result
            head += [f"\n{key}: {text}" for key in (objective, "test_acc") if (text := spread(runs, key))]
        lines = head + ["", "Every run:", ""] + lines
    (sweep_dir / "summary.md").write_text("\n".join(lines) + "\n")
    plotted = grouped if len(grouped) else runs
    params = _swept_values(plotted["overrides"])
    if params:
        values = plotted[f"{objective}_mean" if len(grouped) else objective].tolist()
        errors = grouped[f"{objective}_std"].tolist() if len(grouped) else []
        pruned = plotted["status"].str.startswith("pruned").tolist()
        name = f"{objective} (mean ± std over {' and '.join(replicates)})" if len(grouped) else objective
        title = f"{sweep_dir.name}: {len(runs)} runs" + (f", {len(grouped)} settings" if len(grouped) else "")
        figure = figures.objective_plot(params, values, name, log_params, pruned, errors, title)
        figures.save(figure, sweep_dir / "summary.png")
    return runs


def _write_csv(runs: pd.DataFrame, path: Path, columns: Iterable[str]) -> None:
    runs.assign(overrides=runs["overrides"].str.join(" ")).to_csv(path, columns=list(columns), index=False)


def _table(rows: pd.DataFrame, columns: tuple[str, ...]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return lines + ["| " + " | ".join(cell(r[c], c) for c in columns) + " |" for _, r in rows.iterrows()]


def _named(overrides: list[str]) -> list[str]:
    return [o for o in overrides if names_run(o.partition("=")[0])]


def replicated(runs: pd.DataFrame) -> list[str]:
    """What the runs repeat their settings over: "folds", "seeds" (the replicate keys whose values differ)."""
    given = [o.lstrip("+").partition("=") for overrides in runs["overrides"] for o in _named(overrides)]
    return [noun for key, noun in REPLICATES.items() if len({value for k, _, value in given if k == key}) > 1]


def settings(runs: pd.DataFrame, objective: str = "val_acc_best") -> pd.DataFrame:
    """The runs that differ only in their folds or seeds, one row per setting: mean and (sample) std over its
    finished runs, and its status: ok, "pruned after k of K folds", or failed.

    Best first among the settings with the most runs finished (a pruned trial has fewer folds)."""
    varying = {key for key, noun in REPLICATES.items() if noun in replicated(runs)}
    if not varying:
        return pd.DataFrame()
    setting = [
        " ".join(o for o in _named(os) if o.partition("=")[0].lstrip("+") not in varying) for os in runs.overrides
    ]
    reached = runs.assign(setting=setting, **{key: finished(runs, key) for key in (objective, "test_acc")})
    by_setting = reached.groupby("setting", sort=False)
    grouped = by_setting.agg(
        status=("status", lambda s: _setting_status(reached.loc[s.index], objective)),
        finished=(objective, "count"),
        **{f"{key}_{stat}": (key, stat) for key in (objective, "test_acc") for stat in ("mean", "std")},
        runs=("run", list),
    ).reset_index()
    grouped["overrides"] = grouped["setting"].str.split()
    sort = ["finished", f"{objective}_mean"]
    return grouped.sort_values(sort, ascending=False, na_position="last", kind="stable").reset_index(drop=True)


def _setting_status(runs: pd.DataFrame, objective: str) -> str:
    """failed; pruned; "pruned after k of K folds" where a search's fold pruner stopped the trial; else ok."""
    statuses = set(runs["status"])
    if statuses - set(DONE):
        return "failed"
    if "pruned" in statuses:
        return "pruned"
    given = {o for overrides in runs["overrides"] for o in overrides if o.startswith((FOLDS + "=", "trial="))}
    totals = {o.partition("=")[2] for o in given if o.startswith(FOLDS + "=")}
    done = int(runs[objective].count())
    if len(totals) == 1 and len(given) == 2 and (total := totals.pop()).isdigit() and done < int(total):
        return f"pruned after {done} of {total} folds"  # one trial (sweep=optuna) that stopped early
    return "ok"


def mean_std(row: pd.Series, key: str) -> str:
    mean, std = row[f"{key}_mean"], row[f"{key}_std"]
    return "" if pd.isna(mean) else f"{mean:.4f}" if pd.isna(std) else f"{mean:.4f} ± {std:.4f}"


def _shown(override: str) -> str:
    """An override as the run folders name it: floats to four significant digits."""
    key, _, value = override.partition("=")
    return f"{key}={short_value(value)}"


def _setting_lines(grouped: pd.DataFrame, objective: str, replicates: list[str], sweep_dir: Path) -> list[str]:
    """The settings table (mean ± std over folds or seeds), and for folds the command that tests the best
    setting's fold models together."""
    shared = set.intersection(*map(set, grouped["overrides"])) if len(grouped) > 1 else set()
    over = " and ".join(replicates)
    lines = [f"Each setting over its {over} (mean ± std), best first:", ""]
    lines += [f"| setting | status | {over} | {objective} | test_acc |", "|---|---|---|---|---|"]
    for _, g in grouped.iterrows():  # the overrides all settings share are left out: the table shows what differs
        setting = " ".join(_shown(o) for o in g["overrides"] if o not in shared) or g["setting"] or "defaults"
        lines.append(
            f"| {setting} | {g['status']} | {g['finished']} | {mean_std(g, objective)} | {mean_std(g, 'test_acc')} |"
        )
    if "folds" in replicates:
        folders = ",".join(f"'{sweep_dir / run}'" for run in grouped["runs"][0])
        lines += ["", f'Test the best setting\'s folds as one ensemble: python eval.py "ckpt_path=[{folders}]"']
    return lines


def spread(runs: pd.DataFrame, key: str) -> Optional[str]:
    """'mean ± sample std (min-max, n runs)' of ``key`` over the finished runs, or None below two runs."""
    values = finished(runs, key).dropna()
    if len(values) < 2:
        return None
    return f"{values.mean():.4f} ± {values.std():.4f} ({values.min():.4f}-{values.max():.4f}, {len(values)} runs)"


def _swept_values(overrides: pd.Series) -> dict[str, list[Any]]:
    """Parameter -> value per row, for the overrides that differ between runs."""
    parsed = [dict(o.split("=", 1) for o in given if "=" in o and names_run(o)) for given in overrides]
    values = {k: [p.get(k) for p in parsed] for k in sorted({k for p in parsed for k in p})}
    return {k: v for k, v in values.items() if len(set(v)) > 1}
