"""The pieces of a sweep, without running one: folder names, up-front checks, the summary plot."""

from __future__ import annotations

import importlib.util
import math

import pytest

from mnist_lab import figures
from mnist_lab.command_line import require_extras
from mnist_lab.sweeps.naming import run_dirname
from mnist_lab.sweeps.swept_keys import missing_keys
from support import compose_config

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


@pytest.mark.parametrize("model", ["cnn", "deep_cnn", "logreg", "mlp"])
def test_each_models_search_space_names_only_keys_it_has(model):
    pytest.importorskip("optuna_integration", reason='sweep=optuna needs the optuna extra: pip install -e ".[optuna]"')
    cfg = multirun_config(f"model={model}", "sweep=optuna")
    assert "model.optimizer.lr" in cfg.hydra.sweeper.params
    assert "trainer.max_epochs" not in cfg.hydra.sweeper.params  # the pruner's budget, not a knob
    assert ("model.net.dropout" in cfg.hydra.sweeper.params) == (model in ("cnn", "deep_cnn"))
    assert missing_keys(cfg) == []


def test_a_missing_plugin_names_its_extra(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(SystemExit, match=r'sweep=optuna needs the "optuna" extra.*pip install -e "\.\[optuna\]"'):
        require_extras("train", ["model=logreg", "sweep=optuna"])
    with pytest.raises(SystemExit, match=r'launcher=slurm needs the "launchers" extra'):
        require_extras("train", ["launcher=slurm"])
    with pytest.raises(SystemExit, match=r'launcher=submitit_local needs the "launchers" extra'):
        require_extras("train", ["launcher=submitit_local"])
    with pytest.raises(SystemExit, match=r'logger=mlflow needs the "mlflow" extra.*pip install -e "\.\[mlflow\]"'):
        require_extras("train", ["logger=mlflow"])
    require_extras("train", ["model=logreg", "sweep=lr_dropout_epochs"])  # no plugin needed


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
