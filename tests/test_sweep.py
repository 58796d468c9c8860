from __future__ import annotations

import csv
import subprocess
from pathlib import Path

import pytest

from support import compose_config, run_script

FAST = [
    "model=logreg",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=20",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "data.eval_batch_size=500",
    "callbacks.weight_histograms.every_n_epochs=0",
]


def sweep(sweep_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    return run_script(
        "train.py", "-m", *FAST, *overrides, f"hydra.sweep.dir={sweep_dir}", cwd=sweep_dir.parent, timeout=900
    )


def summary(sweep_dir: Path) -> list[dict]:
    with (sweep_dir / "summary.csv").open() as f:
        return list(csv.DictReader(f))


@pytest.mark.slow  # a subprocess of train.py, eval.py or predict.py
def test_grid_sweep_survives_a_failed_run_and_resumes(tmp_path: Path):
    sweep_dir = tmp_path / "sweep"
    # dropout 1.5 is refused: that run fails, the other three still run.
    result = sweep(sweep_dir, "model=mlp", "model.optimizer.lr=0.003,0.01", "model.net.dropout=0.2,1.5")
    assert result.returncode != 0
    assert "2 of 4 runs failed" in result.stderr
    runs = sorted(p.name for p in sweep_dir.iterdir() if p.is_dir())
    assert runs[0] == "eval_batch_size=500,model=mlp,dropout=0.2,lr=0.003,max_epochs=1"
    rows = summary(sweep_dir)
    assert [r["status"] for r in rows] == ["ok", "ok", "failed", "failed"]  # best first, failures last
    ok = [r for r in rows if r["status"] == "ok"]
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(ok) == 2 and len(failed) == 2
    assert all("model.net.dropout=1.5" in r["overrides"] and "dropout" in r["error"] for r in failed)
    assert float(ok[0]["val_acc_best"]) >= float(ok[1]["val_acc_best"])  # best first
    for r in ok:
        assert Path(r["checkpoint"]).is_file() and float(r["wall_s"]) > 0 and r["epochs"] == "1"
        assert list((sweep_dir / r["run"]).glob("events.out.tfevents.*"))
    table = (sweep_dir / "summary.md").read_text()
    assert table.count("\n|") == 5  # header, rule, four runs
    assert " runs)" not in table  # two learning rates are two settings, not one spread
    assert (sweep_dir / "summary.png").stat().st_size > 5000
    assert "Best run:" in result.stdout
    assert not (tmp_path / "lightning_logs").exists() and not (tmp_path / "multirun").exists()

    # The same sweep again: the finished runs are skipped, the failed ones run again.
    stamps = {r["run"]: (sweep_dir / r["run"] / "result.json").stat().st_mtime_ns for r in ok}
    again = sweep(sweep_dir, "model=mlp", "model.optimizer.lr=0.003,0.01", "model.net.dropout=0.2,1.5")
    assert again.stdout.count("it finished before") == 2
    assert all((sweep_dir / run / "result.json").stat().st_mtime_ns == t for run, t in stamps.items())
    assert len(summary(sweep_dir)) == 4


@pytest.mark.slow  # a subprocess of train.py, eval.py or predict.py
def test_named_sweep_from_config_runs_its_grid(tmp_path: Path):
    sweep_dir = tmp_path / "sweep"
    result = run_script(
        "train.py",
        "sweep=logreg_lr",
        *FAST,
        "hydra.sweeper.params={model.optimizer.lr: '0.1,0.5'}",
        f"hydra.sweep.dir={sweep_dir}",
        cwd=tmp_path,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = summary(sweep_dir)
    assert sorted(r["run"].split(",")[2] for r in rows) == ["lr=0.1", "lr=0.5"]


@pytest.mark.slow  # a subprocess of train.py, eval.py or predict.py
@pytest.mark.parametrize(
    "model, searched",
    [
        ("cnn", {"lr", "dropout"}),
        ("deep_cnn", {"lr", "dropout", "width"}),
        ("logreg", {"lr"}),
        ("mlp", {"lr", "weight_decay"}),
    ],
)
def test_optuna_searches_what_each_model_has(tmp_path: Path, model, searched):
    pytest.importorskip("optuna_integration", reason='sweep=optuna needs the optuna extra: pip install -e ".[optuna]"')
    sweep_dir = tmp_path / "optuna"
    result = run_script(
        "train.py",
        "sweep=optuna",
        *FAST,
        f"model={model}",
        "hydra.sweeper.n_trials=2",
        "data.batch_size=32",
        "trainer.limit_train_batches=3",
        f"hydra.sweep.dir={sweep_dir}",
        cwd=tmp_path,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    best = (sweep_dir / "optimization_results.yaml").read_text()
    assert "best_params" in best and "model.optimizer.lr" in best
    rows = summary(sweep_dir)
    assert [r["status"] for r in rows] == ["ok", "ok"]
    for row in rows:
        swept = dict(
            o.split("=", 1)
            for o in row["overrides"].split()
            if not o.startswith(("sweep=", "model=", "data.", "trainer.", "callbacks.", "trial="))
        )
        assert {key.rsplit(".", 1)[-1] for key in swept} == searched
        lr = float(swept["model.optimizer.lr"])
        assert f"lr={lr:.4g}," in row["run"] and lr != float(f"{lr:.4g}")  # shown short, kept exact
    assert (sweep_dir / "summary.png").is_file()


@pytest.mark.slow  # a subprocess of train.py, eval.py or predict.py
def test_a_sweep_over_a_key_the_model_lacks_stops_before_any_run(tmp_path: Path):
    result = sweep(tmp_path / "sweep", "model.net.dropout=0.1,0.2")  # FAST picks logreg: no dropout
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("error: the sweep sets model.net.dropout, which the config of model=logreg")
    )
    assert not (tmp_path / "sweep").exists()


@pytest.mark.parametrize(
    "launcher, target",
    [("local_parallel", "JoblibLauncher"), ("slurm", "SlurmLauncher"), ("submitit_local", "LocalLauncher")],
)
def test_launcher_configs_compose(launcher, target):
    pytest.importorskip(
        "hydra_plugins.hydra_submitit_launcher",
        reason='launcher=slurm needs the launchers extra: pip install -e ".[launchers]"',
    )
    cfg = compose_config(f"launcher={launcher}", "output_dir=x", hydra_keys=True)
    assert cfg.hydra.launcher._target_.endswith(target)
    if launcher == "slurm":
        assert cfg.hydra.launcher.tasks_per_node == cfg.hydra.launcher.gpus_per_node == 1
    if launcher != "local_parallel":  # what the two submitit launchers share
        assert cfg.hydra.launcher.timeout_min == 120 and cfg.hydra.launcher.submitit_folder.endswith("/.submitit/%j")


@pytest.mark.slow  # a subprocess of train.py, eval.py or predict.py
def test_submitit_sweep_runs_each_run_as_a_job_and_records_the_failed_one(tmp_path: Path):
    pytest.importorskip(
        "hydra_plugins.hydra_submitit_launcher",
        reason='launcher=slurm needs the launchers extra: pip install -e ".[launchers]"',
    )
    sweep_dir = tmp_path / "sweep"
    result = sweep(sweep_dir, "launcher=submitit_local", "model=mlp", "model.net.dropout=0.1,0.2,1.5")
    assert result.returncode != 0 and "1 of 3 runs failed" in result.stderr
    rows = {r["run"].split(",")[2]: r for r in summary(sweep_dir)}
    assert {k: r["status"] for k, r in rows.items()} == {
        "dropout=0.1": "ok",
        "dropout=0.2": "ok",
        "dropout=1.5": "failed",
    }
    assert all(float(rows[k]["test_acc"]) > 0.3 for k in ("dropout=0.1", "dropout=0.2"))
    assert "model.net.dropout=1.5 is not allowed" in rows["dropout=1.5"]["error"]


@pytest.mark.slow  # a subprocess of train.py, eval.py or predict.py
def test_a_fold_grid_summarises_each_setting_over_its_folds_and_tests_them_as_an_ensemble(tmp_path: Path):
    import json
    import re
    import statistics

    sweep_dir = tmp_path / "sweep"
    result = sweep(sweep_dir, "data.folds=3", "data.fold=range(3)", "model.optimizer.lr=0.05,0.5")
    assert result.returncode == 0, result.stderr[-3000:]
    runs = summary(sweep_dir)
    assert len(runs) == 6 and all(r["status"] == "ok" for r in runs)
    with (sweep_dir / "settings.csv").open() as f:
        settings = list(csv.DictReader(f))
    assert [s["finished"] for s in settings] == ["3", "3"]
    assert "data.fold=" not in " ".join(s["setting"] for s in settings)
    means = [float(s["val_acc_best_mean"]) for s in settings]
    assert means == sorted(means, reverse=True)  # best first
    best_runs = [r for r in runs if settings[0]["setting"].split()[-1] in r["overrides"].split()]
    assert float(settings[0]["val_acc_best_mean"]) == pytest.approx(
        statistics.mean(float(r["val_acc_best"]) for r in best_runs)
    )
    table = (sweep_dir / "summary.md").read_text()
    assert table.startswith("Each setting over its folds (mean ± std), best first:")
    assert f"| {settings[0]['setting'].split()[-1]} | ok | 3 | {means[0]:.4f} ± " in table  # what differs
    assert f"Best setting: {settings[0]['setting']}  val_acc_best={means[0]:.4f} ± " in result.stdout

    command = re.search(r'python eval.py "(ckpt_path=\[.*\])"', table).group(1)
    tested = run_script(
        "eval.py", command, "trainer.accelerator=cpu", f"hydra.run.dir={tmp_path / 'eval'}", cwd=tmp_path
    )
    assert tested.returncode == 0, tested.stderr[-3000:]
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert len(metrics["single_test_acc"]) == 3 and metrics["images"] == 10_000
    assert metrics["test_acc"] >= min(metrics["single_test_acc"]) > 0.5
    assert "Ensemble of 3 (mean softmax): test_acc" in tested.stdout + tested.stderr
