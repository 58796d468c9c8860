"""The pieces of a sweep, without running one: folder names, up-front checks, the summary plot."""

from __future__ import annotations

import csv
import importlib.util
import json
import logging
import math
import sys

import numpy as np
import pytest
from omegaconf import OmegaConf, open_dict
from PIL import Image

from mnist_lab import figures
from mnist_lab.command_line import EXTRAS, require_extras
from mnist_lab.errors import ConfigError
from mnist_lab.sweeps.naming import run_dirname
from mnist_lab.sweeps.swept_keys import missing_keys
from mnist_lab.sweeps.tables import write_summary
from mnist_lab.training.run_folder import RESULT
from support import MODELS, compose_config
from support.pixels import colour_at, rendered

OPTUNA_TRIAL = [
    "model.net.dropout=0.47938081700940427",
    "model.optimizer.lr=0.00915226100278092",
    "trainer.max_epochs=2",
]


def test_run_names_show_floats_to_four_digits_and_stay_unique_and_stable():
    name = run_dirname(OPTUNA_TRIAL)
    assert name.startswith("dropout=0.4794,lr=0.009152,max_epochs=2_")
    assert run_dirname(list(OPTUNA_TRIAL)) == name  # the same trial finds the same folder
    neighbour = [OPTUNA_TRIAL[0].replace("427", "9"), *OPTUNA_TRIAL[1:]]  # rounds to the same digits
    assert run_dirname(neighbour) != name and run_dirname(neighbour).startswith("dropout=0.4794,lr=0.009152")


def test_run_names_of_short_values_stay_as_typed():
    assert (
        run_dirname(["model.optimizer.lr=2e-3", "model.net.dropout=0.25", "model=mlp"])
        == "model=mlp,dropout=0.25,lr=2e-3"
    )


def multirun_config(*overrides: str, swept: tuple[str, ...] = ()):
    cfg = compose_config("output_dir=x", *overrides, hydra_keys=True)
    cfg.hydra.overrides.task = [*cfg.hydra.overrides.task, *swept]  # sweep values are not composed up front
    return cfg


def test_swept_keys_must_exist_in_the_models_config():
    assert missing_keys(multirun_config("model=logreg", swept=("model.net.dropout=0.1,0.2",))) == ["model.net.dropout"]
    assert missing_keys(multirun_config("model=cnn", swept=("model.net.dropout=0.1,0.2", "+trainer.foo=1"))) == []
    assert missing_keys(multirun_config("model=logreg", "experiment=cnn_best")) == []


@pytest.mark.parametrize("model", MODELS)
def test_each_models_search_space_names_only_keys_it_has(model):
    pytest.importorskip("optuna", reason='sweep=optuna needs the optuna extra: pip install -e ".[optuna]"')
    from mnist_lab.sweeps.study import sweep_space

    cfg = multirun_config(f"model={model}", "sweep=optuna")
    space, fixed = sweep_space(cfg, [])
    assert "model.optimizer.lr" in space and space["model.optimizer.lr"].log
    assert "trainer.max_epochs" not in space  # the pruner's budget, not a knob
    assert missing_keys(cfg, list(space)) == []
    assert fixed == {}


def test_a_model_without_a_search_space_searches_its_learning_rate(caplog):
    pytest.importorskip("optuna", reason='sweep=optuna needs the optuna extra: pip install -e ".[optuna]"')
    from mnist_lab.sweeps.study import sweep_space

    cfg = multirun_config("model=mlp", "sweep=optuna", "~search_space")
    with caplog.at_level(logging.INFO, logger="mnist_lab.sweeps.study"):
        space, fixed = sweep_space(cfg, ["trainer.max_epochs=2"])
    lr = space.pop("model.optimizer.lr")
    assert (lr.low, lr.high, lr.log, space, fixed) == (0.003, 0.3, True, {}, {"trainer.max_epochs": "2"})
    assert "model=mlp has no search_space: searching model.optimizer.lr from 0.003 to 0.3" in caplog.text
    # What the command line searches replaces the default.
    assert list(sweep_space(cfg, ["model.net.dropout=interval(0, 0.5)"])[0]) == ["model.net.dropout"]


def test_a_search_over_a_key_the_model_lacks_is_refused():
    pytest.importorskip("optuna", reason='sweep=optuna needs the optuna extra: pip install -e ".[optuna]"')
    from mnist_lab.sweeps.study import sweep_space

    cfg = multirun_config("model=logreg", "sweep=optuna")
    with open_dict(cfg):
        cfg.search_space["model.net.width"] = "choice(1, 2)"  # as in a copied model's search space
    with pytest.raises(ConfigError, match=r"the search sets model.net.width, which the config of model=logreg"):
        sweep_space(cfg, [])


def test_a_missing_plugin_names_its_extra(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    for module, _ in EXTRAS.values():  # as if never installed, nor imported by an earlier test
        monkeypatch.delitem(sys.modules, module, raising=False)
    with pytest.raises(SystemExit, match=r'sweep=optuna needs the "optuna" extra.*pip install -e "\.\[optuna\]"'):
        require_extras("train", ["model=logreg", "sweep=optuna"])
    with pytest.raises(SystemExit, match=r'launcher=slurm needs the "launchers" extra'):
        require_extras("train", ["launcher=slurm"])
    with pytest.raises(SystemExit, match=r'launcher=submitit_local needs the "launchers" extra'):
        require_extras("train", ["launcher=submitit_local"])
    with pytest.raises(SystemExit, match=r'logger=mlflow needs the "mlflow" extra.*pip install -e "\.\[mlflow\]"'):
        require_extras("train", ["logger=mlflow"])
    require_extras("train", ["model=logreg", "sweep=lr_dropout_epochs"])  # no plugin needed


def test_an_extra_already_imported_is_installed():
    pytest.importorskip("optuna_integration", reason='sweep=optuna needs the optuna extra: pip install -e ".[optuna]"')
    require_extras("train", ["sweep=optuna"])  # its module has no __spec__ once imported: find_spec would raise


def test_summary_plot_marks_best_and_failed_runs_and_scales_axes_by_the_search():
    params = {
        "model.net.dropout": ["0.1", "0.25", "0.5"],
        "model.optimizer.lr": ["1e-3", "3e-3", "1e-2"],
        "trainer.max_epochs": ["1", "2", "3"],
    }
    fig = figures.objective_plot(params, [0.98, 0.99, math.nan], "val_acc_best", log_params=["model.optimizer.lr"])
    dropout, lr, epochs = fig.axes
    assert (dropout.get_xscale(), lr.get_xscale(), epochs.get_xscale()) == ("linear", "log", "linear")
    assert all(float(t).is_integer() for t in epochs.get_xticks())
    labels = [c.get_label() for c in dropout.collections]
    best, failed = (dropout.collections[labels.index(k)].get_offsets() for k in ("best", "failed"))
    assert best.tolist() == [[0.25, 0.99]] and failed[:, 0].tolist() == [0.5] and failed[0, 1] < 0.98


def result_rows(folder, *runs: tuple[list[str], float | None, str]) -> None:
    """A sweep folder of finished runs: (overrides, val_acc_best, status) each."""
    for i, (overrides, value, status) in enumerate(runs):
        run = folder / f"run{i}"
        run.mkdir()
        record = {"overrides": overrides, "status": status, "val_acc_best": value, "test_acc": value}
        (run / RESULT).write_text(json.dumps(record))


def test_seeds_are_replicates_each_setting_a_mean_and_std_with_error_bars(tmp_path):
    result_rows(
        tmp_path,
        *[
            ([f"model.optimizer.lr={lr}", f"seed={seed}"], acc + seed / 100, "ok")
            for lr, acc in (("0.4004944362142888", 0.9), ("0.1", 0.8))
            for seed in (1, 2)
        ],
    )
    write_summary(tmp_path)
    with (tmp_path / "settings.csv").open() as f:
        grouped = list(csv.DictReader(f))
    assert [(g["setting"], g["finished"]) for g in grouped] == [
        ("model.optimizer.lr=0.4004944362142888", "2"),
        ("model.optimizer.lr=0.1", "2"),
    ]
    assert float(grouped[0]["val_acc_best_mean"]) == pytest.approx(0.915)
    table = (tmp_path / "summary.md").read_text()
    assert table.startswith("Each setting over its seeds (mean ± std), best first:")
    assert "| model.optimizer.lr=0.4005 | ok | 2 | 0.9150 ± 0.0071 |" in table  # as the run folders show it
    assert "(4 runs)" not in table  # no spread across two learning rates
    assert Image.open(tmp_path / "summary.png").size[0] == 400  # one panel: lr, not seed


def test_a_fold_search_trial_stopped_early_is_shown_pruned(tmp_path):
    trial = ["model.optimizer.lr=0.1", "data.folds=3", "trial=0"]
    result_rows(
        tmp_path,
        *[([*trial, f"data.fold={fold}"], 0.9, "ok") for fold in range(3)],
        *[(["model.optimizer.lr=0.5", "data.folds=3", "trial=1", f"data.fold={fold}"], 0.5, "ok") for fold in range(2)],
    )
    write_summary(tmp_path)
    table = (tmp_path / "summary.md").read_text()
    assert "| model.optimizer.lr=0.1 | ok | 3 | 0.9000 ± 0.0000 |" in table
    assert "| model.optimizer.lr=0.5 | pruned after 2 of 3 folds | 2 | 0.5000 ± 0.0000 |" in table


def test_the_summary_plot_has_a_title_and_error_bars_of_each_settings_spread():
    means, spreads = [0.9, 0.8], [0.01, 0.02]
    fig = figures.objective_plot({"lr": ["0.1", "0.5"]}, means, "val_acc_best", errors=spreads, title="t")
    assert fig.get_suptitle() == "t"
    pixels, ax = rendered(fig), fig.axes[0]

    def inked(x: float, y: float) -> bool:
        return bool(np.abs(colour_at(pixels, ax, x, y) - 255).max() > 60)

    for x, mean, spread in zip((0.1, 0.5), means, spreads):  # a bar from mean - std to mean + std, no further
        assert inked(x, mean + 0.8 * spread) and inked(x, mean - 0.8 * spread)
        assert not inked(x, mean + 1.5 * spread) and not inked(x, mean - 1.5 * spread)


def test_optunas_plots_of_a_one_epoch_search_show_whole_steps():
    pytest.importorskip("optuna", reason='sweep=optuna needs the optuna extra: pip install -e ".[optuna]"')
    from mnist_lab.sweeps.study import _integer_x

    ax = figures.pyplot().subplots()[1]
    ax.plot([0, 0], [0.8, 0.9], marker="o")  # every trial's only step is 0: matplotlib spans -0.04..0.04
    _integer_x(ax)
    low, high = ax.get_xlim()
    assert high - low >= 1 and [t for t in ax.get_xticks() if low <= t <= high] == [0]


def test_one_recipe_over_seeds_ends_with_its_spread(tmp_path):
    result_rows(tmp_path, *[(["experiment=cnn_best", f"seed={seed}"], 0.99 + seed / 1000, "ok") for seed in (1, 2, 3)])
    write_summary(tmp_path)
    table = (tmp_path / "summary.md").read_text()
    assert "| experiment=cnn_best | ok | 3 | 0.9920 ± 0.0010 |" in table
    assert "val_acc_best: 0.9920 ± 0.0010 (0.9910-0.9930, 3 runs)" in table


def test_the_summary_formats_each_column_by_what_it_holds(tmp_path):
    """A pruned run's 0.9 s is seconds, not an accuracy: numbers read by their column, not their size."""
    (tmp_path / "fast").mkdir()
    record = {"overrides": ["model.optimizer.lr=0.5"], "status": "pruned", "val_acc_best": 0.5, "test_acc": None}
    (tmp_path / "fast" / RESULT).write_text(json.dumps({**record, "epochs": 1, "wall_s": 0.9252}))
    (tmp_path / "slow").mkdir()
    record = {"overrides": ["model.optimizer.lr=0.1"], "status": "ok", "val_acc_best": 0.93, "test_acc": 0.9312}
    (tmp_path / "slow" / RESULT).write_text(json.dumps({**record, "epochs": 3, "wall_s": 61.04}))
    write_summary(tmp_path)
    table = (tmp_path / "summary.md").read_text()
    assert "| slow | ok | 0.9300 | 0.9312 | 3 | 61.0 |" in table
    assert "| fast | pruned | 0.5000 |  | 1 | 0.9 |" in table


def test_a_sweep_summarys_means_spreads_and_best_setting_are_the_runs_own(tmp_path, caplog):
    """Three learning rates over four seeds, with random results and one failed run: every number in the
    summary is checked against numpy's mean and sample std of the runs that finished."""
    from mnist_lab.sweeps.summary import SweepSummary

    draw = np.random.default_rng(7)
    reached = {lr: draw.uniform(0.8, 0.99, size=4) for lr in ("0.01", "0.1", "0.3")}
    runs = [
        ([f"model.optimizer.lr={lr}", f"seed={seed}"], float(v), "ok")
        for lr in reached
        for seed, v in enumerate(reached[lr])
    ]
    runs[5] = (runs[5][0], None, "failed")  # lr=0.1's second seed: left out of its mean
    result_rows(tmp_path, *runs)
    finished = {lr: [v for (o, v, status) in runs if o[0].endswith(f"={lr}") and status == "ok"] for lr in reached}
    expected = {lr: (np.mean(v), np.std(v, ddof=1), len(v)) for lr, v in finished.items()}
    best = max(expected, key=lambda lr: expected[lr][0])

    sweep = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}, "sweeper": {}}})
    with caplog.at_level(logging.INFO), pytest.raises(SystemExit, match="1 of 12 runs failed"):
        SweepSummary().on_multirun_end(sweep)
    with (tmp_path / "settings.csv").open() as f:
        grouped = {row["setting"].split("=")[1]: row for row in csv.DictReader(f)}
    for lr, (mean, std, count) in expected.items():
        row = grouped[lr]
        assert float(row["val_acc_best_mean"]) == pytest.approx(mean)
        assert float(row["val_acc_best_std"]) == pytest.approx(std)
        assert int(row["finished"]) == count
    table = (tmp_path / "summary.md").read_text()
    mean, std, count = expected[best]
    assert f"| model.optimizer.lr={best} | ok | {count} | {mean:.4f} ± {std:.4f} |" in table.splitlines()[4]  # first
    assert f"Best setting: model.optimizer.lr={best}  val_acc_best={mean:.4f} ± {std:.4f}" in caplog.text
