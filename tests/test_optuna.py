"""sweep=optuna: the project's sweeper on current Optuna, with pruning, a stored study, and several processes."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from omegaconf import OmegaConf

optuna = pytest.importorskip("optuna", reason='sweep=optuna needs the optuna extra: pip install -e ".[optuna]"')

from optuna.trial import TrialState  # noqa: E402

from mnist_lab.errors import ConfigError  # noqa: E402
from mnist_lab.sweeps.study import ask, counted, distribution, open_storage  # noqa: E402
from support import compose_config, postgres, run_script, start_script  # noqa: E402

TINY = [
    "sweep=optuna",
    "model=logreg",
    "trainer.limit_train_batches=20",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=1",
    "callbacks.weight_histograms.every_n_epochs=0",
    "callbacks.progress_bar.refresh_rate=0",
    "callbacks.model_summary.max_depth=0",
]


def study(storage: Path, name: str = "logreg") -> optuna.Study:
    journal = optuna.storages.journal.JournalFileBackend(str(storage))
    return optuna.load_study(study_name=name, storage=optuna.storages.JournalStorage(journal))


def test_a_study_that_holds_n_trials_asks_no_more(tmp_path: Path):
    """Several sweep processes on one study: whoever asks past n_trials gets no trial, and none is counted."""
    journal = optuna.storages.journal.JournalFileBackend(str(tmp_path / "study.journal"))
    shared = optuna.create_study(study_name="s", storage=optuna.storages.JournalStorage(journal))
    space = {"lr": distribution("lr", "interval(0.1, 1.0)")}
    sampler = OmegaConf.create({"_target_": "optuna.samplers.RandomSampler", "seed": None})
    asked = [ask(shared, space, sampler, n_trials=2) for _ in range(3)]
    assert [t is not None for t in asked] == [True, True, False]
    assert counted(shared) == 2 and len(shared.trials) == 3  # the third is recorded, as surplus


def results(sweep_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/result.json"))]


def test_hydra_sweep_syntax_becomes_optuna_distributions():
    assert distribution("lr", "tag(log, interval(1e-4, 1e-2))") == optuna.distributions.FloatDistribution(
        1e-4, 1e-2, log=True
    )
    assert distribution("p", "interval(0.0, 0.7)") == optuna.distributions.FloatDistribution(0.0, 0.7)
    assert distribution("n", "range(1, 4)") == optuna.distributions.IntDistribution(1, 3)
    assert distribution("w", "choice(0.5, 1.0)") == optuna.distributions.CategoricalDistribution([0.5, 1.0])
    assert distribution("a", "choice(relu, gelu)").choices == ("relu", "gelu")
    assert distribution("x", "3") is None  # a fixed value
    with pytest.raises(ConfigError, match=r"hydra.sweeper.params.lr=interval\(0.1 is not allowed"):
        distribution("lr", "interval(0.1")
    with pytest.raises(ConfigError, match="0 < low < high for log"):
        distribution("lr", "tag(log, interval(0, 1))")
    with pytest.raises(ConfigError, match=r"interval\(2, 1\) is not allowed: it needs low < high"):
        distribution("p", "interval(2, 1)")


@pytest.mark.slow  # a subprocess of train.py, eval.py or predict.py
def test_a_pruned_sweep_records_pruned_runs_and_draws_the_study(tmp_path: Path):
    sweep_dir = tmp_path / "sweep"
    result = run_script(
        "train.py",
        *TINY,
        "hydra.sweeper.n_trials=8",
        "hydra.sweeper.pruner.n_startup_trials=2",
        "trainer.max_epochs=3",
        f"hydra.sweep.dir={sweep_dir}",
        cwd=tmp_path,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]  # pruning is no error
    runs = results(sweep_dir)
    pruned = [r for r in runs if r["status"] == "pruned"]
    assert len(runs) == 8 and pruned and all(r["status"] in ("ok", "pruned") for r in runs)
    assert all(r["epochs"] < 3 and r["val_acc_best"] > 0 and r["test_acc"] is None for r in pruned)
    trials = study(sweep_dir / "optuna.journal").trials
    states = [t.state for t in trials]
    assert states.count(optuna.trial.TrialState.PRUNED) == len(pruned)
    assert states.count(optuna.trial.TrialState.COMPLETE) == 8 - len(pruned)
    assert all(len(t.intermediate_values) == 3 for t in trials if t.state == optuna.trial.TrialState.COMPLETE)
    assert "max_epochs" not in " ".join(trials[0].params)  # epochs are the pruner's budget, not searched
    table = (sweep_dir / "summary.md").read_text()
    assert table.count("| pruned |") == len(pruned)
    assert f"{len(pruned)} of 8 runs pruned" in result.stdout
    for name in ("optuna_history", "optuna_intermediate_values", "optuna_importances", "summary"):
        assert (sweep_dir / f"{name}.png").is_file(), name  # what they show: test_optunas_plots_show_each_trial
    best = (sweep_dir / "optimization_results.yaml").read_text()
    assert "best_params:" in best and "model.optimizer.lr" in best and f"pruned: {len(pruned)}" in best


def _kill_during_a_trial(sweep: subprocess.Popen, storage: Path) -> None:
    """SIGKILL ``sweep`` while one of its trials is running (given its parameters, not between two): nobody tells
    the study."""
    deadline = time.monotonic() + 120
    while not [t for t in study(storage).trials if t.state == optuna.trial.TrialState.RUNNING and t.params]:
        assert time.monotonic() < deadline and sweep.poll() is None, "the sweep asked no more trials"
        time.sleep(0.2)
    sweep.send_signal(signal.SIGKILL)
    sweep.wait()


def _wait_for_results(sweep_dir: Path, count: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while sum(r["status"] == "ok" for r in results(sweep_dir)) < count:
        assert time.monotonic() < deadline, "the sweep did not get that far"
        time.sleep(0.5)


@pytest.mark.slow  # a subprocess of train.py, eval.py or predict.py
def test_a_killed_study_continues_to_n_trials_and_leaves_nothing_running(tmp_path: Path):
    sweep_dir = tmp_path / "sweep"
    args = [*TINY, "hydra.sweeper.n_trials=5", "trainer.max_epochs=2", f"hydra.sweep.dir={sweep_dir}"]
    first = start_script("train.py", *args, cwd=tmp_path)
    _wait_for_results(sweep_dir, 2)
    _kill_during_a_trial(first, sweep_dir / "optuna.journal")
    before = study(sweep_dir / "optuna.journal").trials
    running = [t for t in before if t.state == optuna.trial.TrialState.RUNNING]
    assert len(running) == 1  # the trial whose run was killed
    # Killed after its run wrote result.json but before the sweeper told the study: the retry finds it finished.
    finished_untold = sum(r["status"] == "ok" for r in results(sweep_dir)) - sum(
        t.state == optuna.trial.TrialState.COMPLETE for t in before
    )

    again = run_script("train.py", *args, cwd=tmp_path, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "left running by a dead sweep process asked again" in again.stdout
    after = study(sweep_dir / "optuna.journal").trials
    assert not [t for t in after if t.state == optuna.trial.TrialState.RUNNING]
    killed = after[running[0].number]
    assert killed.state == optuna.trial.TrialState.FAIL and killed.user_attrs["uncounted"] == "killed"
    counted = [t for t in after if "uncounted" not in t.user_attrs]
    assert len(counted) == 5 and all(t.state == optuna.trial.TrialState.COMPLETE for t in counted)
    assert any(t.params == killed.params for t in counted)  # retried with its parameters
    assert again.stdout.count("it finished before") == finished_untold  # told trials are not asked again
    assert len(results(sweep_dir)) == 5 and all(r["status"] == "ok" for r in results(sweep_dir))


@pytest.mark.slow  # a subprocess of train.py, eval.py or predict.py
def test_two_sweep_processes_share_one_study_without_duplicates(tmp_path: Path):
    storage = tmp_path / "shared" / "study.journal"
    shared = [*TINY, "hydra.sweeper.n_trials=6", "trainer.max_epochs=1", f"hydra.sweeper.storage={storage}"]
    sweeps = [start_script("train.py", *shared, f"hydra.sweep.dir={tmp_path / name}", cwd=tmp_path) for name in "ab"]
    assert [p.wait(timeout=900) for p in sweeps] == [0, 0]
    trials = [t for t in study(storage).trials if "uncounted" not in t.user_attrs]
    assert len(trials) == 6 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert len({t.params["model.optimizer.lr"] for t in trials}) == 6  # no duplicate
    owners = {t.user_attrs["sweeper"] for t in trials}
    assert len(owners) == 2  # both processes ran trials
    assert len(results(tmp_path / "a")) + len(results(tmp_path / "b")) == 6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    "override, message",
    [
        ("hydra.sweeper.sampler._target_=optuna.samplers.Nope", "hydra.sweeper.sampler._target_=optuna.samplers.Nope"),
        ("hydra.sweeper.pruner._target_=optuna.pruners.Nope", "hydra.sweeper.pruner._target_=optuna.pruners.Nope"),
        ("hydra.sweeper.params={model.optimizer.lr: 'interval(0.1'}", "hydra.sweeper.params.model.optimizer.lr"),
        ("hydra.sweeper.storage=sqlite:///{tmp}/file/x.db", "cannot be opened"),
        ("hydra.sweeper.heartbeat_s=0", "hydra.sweeper.heartbeat_s=0 is not allowed: it must be a number of seconds"),
    ],
)
def test_bad_sweep_settings_are_refused_in_one_line(tmp_path: Path, override, message):
    """What the sweeper checks before its first trial (its process says it in one line: the test below)."""
    from mnist_lab.sweeps.study import open_search

    (tmp_path / "file").write_text("a file where the storage wants a folder")
    sweep_dir = f"hydra.sweep.dir={tmp_path / 'sweep'}"
    config = compose_config(*TINY, sweep_dir, override.replace("{tmp}", str(tmp_path)), hydra_keys=True)
    with pytest.raises(ConfigError, match=re.escape(message)) as refused:
        open_search(config, [])
    assert "\n" not in str(refused.value)


def test_a_search_on_a_datamodule_without_a_batch_size_opens(tmp_path: Path):
    """model=logreg sets data.batch_size: a DataModule that takes none is searched as its runs train it."""
    from mnist_lab.sweeps.study import open_search

    config = compose_config(*TINY, f"hydra.sweep.dir={tmp_path / 'sweep'}", hydra_keys=True)
    config.data = {"_target_": "support.user_data.OwnBatches", "batch_size": config.data.batch_size}
    assert open_search(config, []).folds is None


@pytest.mark.slow  # a subprocess of train.py, eval.py or predict.py
def test_bad_sweep_settings_stop_before_any_run_in_one_line(tmp_path: Path):
    base = [*TINY, "hydra.sweeper.n_trials=2", "trainer.max_epochs=1"]
    sweep_dir = tmp_path / "nope"
    result = run_script(
        "train.py",
        *base,
        "hydra.sweeper.sampler._target_=optuna.samplers.Nope",
        f"hydra.sweep.dir={sweep_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 1 and "error: hydra.sweeper.sampler._target_=optuna.samplers.Nope" in result.stderr
    assert "Traceback" not in result.stderr and not results(sweep_dir)

    # The same study with another search space.
    sweep_dir = tmp_path / "space"
    first = run_script("train.py", *base, f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path, timeout=900)
    assert first.returncode == 0, first.stderr[-2000:]
    other = "hydra.sweeper.params={model.optimizer.lr: 'interval(0.1, 0.2)'}"
    second = run_script("train.py", *base, other, f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)
    assert second.returncode == 1 and "error: study 'logreg' in this storage searches another space" in second.stderr


@pytest.mark.slow  # a subprocess of train.py, eval.py or predict.py
def test_optuna_dashboard_lists_the_study_and_its_trials(tmp_path: Path):
    sweep_dir = tmp_path / "sweep"
    done = run_script("train.py", *TINY, "hydra.sweeper.n_trials=2", f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    port = _free_port()
    command = [Path(sys.executable).parent / "optuna-dashboard", sweep_dir / "optuna.journal"]
    dashboard = subprocess.Popen(
        [*map(str, command), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as response:
                    studies = json.load(response)["study_summaries"]
                break
            except OSError:
                assert time.monotonic() < deadline and dashboard.poll() is None, "the dashboard did not start"
                time.sleep(0.5)
        assert [s["study_name"] for s in studies] == ["logreg"]
        url = f"http://127.0.0.1:{port}/api/studies/{studies[0]['study_id']}"
        with urllib.request.urlopen(url, timeout=10) as response:
            assert len(json.load(response)["trials"]) == 2
    finally:
        dashboard.terminate()
        dashboard.wait(timeout=30)


@pytest.mark.slow  # a subprocess of train.py, eval.py or predict.py
def test_a_trial_the_pruner_would_stop_at_its_last_epoch_finishes_and_is_tested(tmp_path: Path):
    """A stored trial that reached 100 % makes the median pruner fire at epoch 0, which is the last one here."""
    from mnist_lab.sweeps.study import claim_space, search_space

    sweep_dir = tmp_path / "sweep"
    sweep_dir.mkdir()
    journal = optuna.storages.journal.JournalFileBackend(str(sweep_dir / "optuna.journal"))
    stored = optuna.create_study(
        study_name="logreg", storage=optuna.storages.JournalStorage(journal), direction="maximize"
    )
    space, _ = search_space({"model.optimizer.lr": "tag(log, interval(0.01, 2.0))"})
    claim_space(stored, space)
    stored.add_trial(
        optuna.trial.create_trial(
            params={"model.optimizer.lr": 0.1}, distributions=space, value=1.0, intermediate_values={0: 1.0}
        )
    )
    pruner = ["hydra.sweeper.pruner.n_startup_trials=1", "hydra.sweeper.pruner.n_warmup_steps=0"]
    result = run_script(
        "train.py",
        *TINY,
        *pruner,
        "hydra.sweeper.n_trials=2",
        "trainer.max_epochs=1",
        f"hydra.sweep.dir={sweep_dir}",
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    [run] = results(sweep_dir)
    assert run["status"] == "ok" and run["test_acc"] > 0.5 and run["epochs"] == 1
    trial = study(sweep_dir / "optuna.journal").trials[1]
    assert trial.state == optuna.trial.TrialState.COMPLETE and trial.value == pytest.approx(run["val_acc_best"])
    assert trial.intermediate_values[0] < 1.0  # below the median: the pruner would have stopped it


@pytest.mark.slow  # a subprocess of train.py, eval.py or predict.py
def test_a_fold_search_tells_the_study_each_settings_fold_mean(tmp_path: Path):
    sweep_dir = tmp_path / "sweep"
    pruner = ["hydra/sweeper/fold_pruner=median", "hydra.sweeper.fold_pruner.n_startup_trials=1"]
    args = [*TINY, *pruner, "data.folds=3", "hydra.sweeper.n_trials=4", "trainer.max_epochs=1"]
    result = run_script("train.py", *args, f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    trials = study(sweep_dir / "optuna.journal").trials
    assert len(trials) == 4
    runs = {p.parent.name: json.loads(p.read_text()) for p in sweep_dir.glob("*/result.json")}
    for trial in trials:
        lr = trial.params["model.optimizer.lr"]
        own = {name: r for name, r in runs.items() if f"model.optimizer.lr={lr}" in r["overrides"]}
        by_fold = {int(o.split("=")[1]): r for r in own.values() for o in r["overrides"] if o.startswith("data.fold=")}
        folds, values = sorted(by_fold), [by_fold[f]["val_acc_best"] for f in sorted(by_fold)]
        assert all(f"fold={fold}," in name for name, r in own.items() for fold in folds if by_fold[fold] is r)
        assert all(r["status"] == "ok" for r in own.values()) and trial.user_attrs["fold_values"] == values
        if trial.state == optuna.trial.TrialState.COMPLETE:
            assert folds == [0, 1, 2] and trial.value == pytest.approx(sum(values) / 3)
            assert len(trial.intermediate_values) == 3
        else:  # stopped between folds by the fold pruner: said on the console and in the summary
            assert trial.state == optuna.trial.TrialState.PRUNED and folds == list(range(len(folds))) and len(folds) < 3
            assert f"Trial {trial.number} pruned after {len(folds)} of 3 folds" in result.stdout
            assert f"| pruned after {len(folds)} of 3 folds | {len(folds)} |" in (sweep_dir / "summary.md").read_text()
    assert (sweep_dir / "summary.md").read_text().startswith("Each setting over its folds (mean ± std)")
    output = result.stdout + result.stderr
    for noise in ("Using an existing study", "Launching 0 jobs", "ExperimentalWarning", "\x1b["):
        assert noise not in output, noise
    best = (sweep_dir / "optimization_results.yaml").read_text()
    assert f"best_value: {max(t.value for t in trials if t.value is not None)}" in best


@pytest.mark.parametrize("storage", ["journal", "sqlite"])
def test_a_silent_trial_of_another_machine_is_asked_again_once_and_a_live_one_is_left(tmp_path: Path, storage):
    import time

    from mnist_lab.sweeps.study import HEARTBEAT_KEY, OWNER_KEY, retry_dead

    url = open_storage(str(tmp_path / "study.journal")) if storage == "journal" else f"sqlite:///{tmp_path}/s.db"
    shared = optuna.create_study(study_name="s", storage=url, direction="maximize")
    trials = [shared.ask({"lr": optuna.distributions.FloatDistribution(0.1, 1.0)}) for _ in range(3)]
    for trial, silent_s in zip(trials, (1000, 5, 1000)):
        trial.set_user_attr(OWNER_KEY, "another-machine:4242")
        trial.set_user_attr(HEARTBEAT_KEY, time.time() - silent_s)
    trials[2].set_user_attr("retry_of", 0)  # already a retry: it dies for good
    others = optuna.load_study(study_name="s", storage=url)  # a second sweep process on the same study
    assert retry_dead(others, grace_s=180) == 1 and retry_dead(shared, grace_s=180) == 0  # once, by one process
    states = [t.state for t in shared.get_trials()]
    assert states[:3] == [TrialState.FAIL, TrialState.RUNNING, TrialState.FAIL]
    assert states[3:] == [TrialState.WAITING]  # its parameters, queued again
    queued = shared.get_trials()[3]
    assert queued.params == {} and queued.user_attrs["retry_of"] == 0
    assert counted(shared) == 3  # the first dead trial is replaced by its retry; the dead retry counts


def test_a_dead_trial_that_never_got_its_parameters_is_replaced_not_retried(tmp_path: Path):
    from mnist_lab.sweeps.study import HEARTBEAT_KEY, OWNER_KEY, retry_dead, to_ask

    shared = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path}/s.db")
    trial = shared.ask()  # killed between ask and suggest
    trial.set_user_attr(OWNER_KEY, "another-machine:4242")
    trial.set_user_attr(HEARTBEAT_KEY, time.time() - 1000)
    assert retry_dead(shared, grace_s=180) == 0
    [dead] = shared.get_trials()
    assert dead.state == TrialState.FAIL and dead.user_attrs["uncounted"] == "killed"
    assert counted(shared) == 0 and to_ask(shared, 3) == 3  # a fresh trial is asked in its place


def test_a_heartbeat_thread_stamps_its_trials_while_it_runs(tmp_path: Path):
    import threading

    from mnist_lab.sweeps.heartbeat import Beat
    from mnist_lab.sweeps.study import HEARTBEAT_KEY

    url = f"sqlite:///{tmp_path}/s.db"
    shared = optuna.create_study(study_name="s", storage=url)
    trial = shared.ask()
    started, proceed = threading.Semaphore(0), threading.Semaphore(0)

    def numbers() -> list[int]:  # each round starts here, and waits until the test has read the stamp before it
        started.release()
        proceed.acquire()
        return [trial.number]

    stamps = []
    with Beat(lambda: optuna.load_study(study_name="s", storage=url), numbers, every_s=0.01):
        for _ in range(3):
            assert started.acquire(timeout=60), "the heartbeat thread stopped beating"
            stamps.append(shared.trials[0].user_attrs.get(HEARTBEAT_KEY))
            proceed.release()
        proceed.release(1000)  # the rounds after these: free, until the with's end stops the thread
    assert stamps[0] is None and stamps[2] > stamps[1] > time.time() - 60  # rounds 1 and 2 stamped it, in turn
    assert "trial-heartbeat" not in [thread.name for thread in threading.enumerate()]  # it ends with the with


def test_optunas_plots_show_each_trial_of_the_study():
    import numpy as np

    from mnist_lab.sweeps.study import study_plots
    from support.pixels import colour_at, rendered

    searched = optuna.create_study(direction="maximize")
    values = [0.5, 0.9, 0.7, 0.95, 0.6, 0.8]
    for value in values:
        trial = searched.ask()
        trial.suggest_float("model.optimizer.lr", 1e-3, 1e-1, log=True)
        trial.suggest_int("model.net.hidden", 8, 64)
        for step in range(3):
            trial.report(value - 0.1 * (2 - step), step)
        searched.tell(trial, value)
    plots = study_plots(searched)
    assert set(plots) == {"optuna_history.png", "optuna_intermediate_values.png", "optuna_importances.png"}
    points = {
        "optuna_history.png": [(number, value) for number, value in enumerate(values)],
        "optuna_intermediate_values.png": [(step, v - 0.1 * (2 - step)) for v in values for step in range(3)],
    }
    for name, shown in points.items():
        pixels, ax = rendered(plots[name]), plots[name].axes[0]
        ground = np.array(ax.get_facecolor()[:3]) * 255
        for x, y in shown:  # a mark where each trial's (number or step, value) falls, not the axes' ground
            colour = colour_at(pixels, ax, x, y)
            assert np.abs(colour - ground).max() > 40, (name, x, y, colour)
    assert {t.get_text() for t in plots["optuna_importances.png"].axes[0].get_yticklabels()} == {
        "model.optimizer.lr",
        "model.net.hidden",
    }


@pytest.mark.slow  # a subprocess of train.py, eval.py or predict.py
@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="another host name needs root (unshare)")
def test_a_trial_left_by_a_dead_sweep_on_another_machine_is_retried_once_its_heartbeat_is_stale(tmp_path: Path):
    storage = tmp_path / "shared" / "study.journal"
    args = [*TINY, "trainer.max_epochs=2", "hydra.sweeper.heartbeat_s=1", f"hydra.sweeper.storage={storage}"]
    other = start_script(
        "train.py",
        *args,
        "hydra.sweeper.n_trials=3",
        f"hydra.sweep.dir={tmp_path / 'a'}",
        cwd=tmp_path,
        host="other-machine",
    )
    _wait_for_results(tmp_path / "a", 1)
    _kill_during_a_trial(other, storage)  # a node lost
    [left] = [t for t in study(storage, "logreg").trials if t.state == TrialState.RUNNING]
    assert left.user_attrs["sweeper"].startswith("other-machine:")

    here = [*args, "hydra.sweeper.n_trials=3", "hydra.sweeper.grace_s=900"]  # however slow this machine is
    fresh = run_script("train.py", *here, f"hydra.sweep.dir={tmp_path / 'b'}", cwd=tmp_path, timeout=600)
    assert fresh.returncode == 0 and "asked again" not in fresh.stdout, fresh.stderr[-2000:]
    assert study(storage, "logreg").trials[left.number].state == TrialState.RUNNING  # within its grace: alive

    here = [*args, "hydra.sweeper.n_trials=3", "hydra.sweeper.grace_s=2"]
    stale = run_script("train.py", *here, f"hydra.sweep.dir={tmp_path / 'c'}", cwd=tmp_path, timeout=600)
    assert stale.returncode == 0 and "1 left running by a dead sweep process asked again" in stale.stdout
    trials = study(storage, "logreg").trials
    assert trials[left.number].state == TrialState.FAIL and trials[left.number].user_attrs["uncounted"] == "killed"
    [retry] = [t for t in trials if t.user_attrs.get("retry_of") == left.number]
    assert retry.state == TrialState.COMPLETE and retry.params == left.params
    assert counted(study(storage, "logreg")) == 3 and not [t for t in trials if t.state == TrialState.RUNNING]


def _trials_on(url: str, host: str, state: TrialState) -> list:
    try:
        trials = optuna.load_study(study_name="logreg", storage=open_storage(url)).trials
    except KeyError:  # not created yet
        return []
    on_host = [t for t in trials if t.state == state and t.user_attrs.get("sweeper", "").startswith(f"{host}:")]
    return [t for t in on_host if t.params]  # running: its run started


def _trial_runs(*sweep_dirs: Path) -> dict[int, dict]:
    """Each run's result.json by the trial it ran (its trial=N override)."""
    runs = {}
    for sweep_dir in sweep_dirs:
        for overrides in sweep_dir.glob("*/.hydra/overrides.yaml"):
            [number] = [int(o.split("=")[1]) for o in OmegaConf.load(overrides) if o.startswith("trial=")]
            runs[number] = json.loads((overrides.parent.parent / "result.json").read_text())
    return runs


@pytest.mark.slow  # two sweep processes and a PostgreSQL server
@pytest.mark.skipif(not postgres.can_run(), reason="needs root and PostgreSQL (apt-get install postgresql)")
def test_two_machines_share_one_postgresql_study_and_one_killed_is_retried_by_the_other(tmp_path: Path):
    pytest.importorskip("psycopg", reason='postgresql:// needs psycopg: pip install -e ".[optuna]"')
    with postgres.postgres_server() as url:
        args = [*TINY, "trainer.max_epochs=2", "hydra.sweeper.n_trials=6", f"hydra.sweeper.storage='{url}'"]
        args += ["hydra.sweeper.heartbeat_s=1", "hydra.sweeper.grace_s=4"]
        a = start_script("train.py", *args, f"hydra.sweep.dir={tmp_path / 'a'}", cwd=tmp_path, host="node-a")
        b = start_script("train.py", *args, f"hydra.sweep.dir={tmp_path / 'b'}", cwd=tmp_path, host="node-b")
        deadline = time.monotonic() + 300
        # node-a lost in the middle of a trial, after it finished one
        while not (_trials_on(url, "node-a", TrialState.COMPLETE) and _trials_on(url, "node-a", TrialState.RUNNING)):
            assert time.monotonic() < deadline and a.poll() is None, "node-a ran no trial"
            time.sleep(0.2)
        a.send_signal(signal.SIGKILL)
        a.wait()
        assert b.wait(timeout=600) == 0
        trials = optuna.load_study(study_name="logreg", storage=open_storage(url)).trials
        if any(t.state == TrialState.RUNNING for t in trials):  # node-b finished before the heartbeat went stale
            again = start_script("train.py", *args, f"hydra.sweep.dir={tmp_path / 'b'}", cwd=tmp_path, host="node-b")
            assert again.wait(timeout=600) == 0
            trials = optuna.load_study(study_name="logreg", storage=open_storage(url)).trials
    [killed] = [t for t in trials if t.user_attrs.get("uncounted") == "killed"]
    assert killed.state == TrialState.FAIL and killed.user_attrs["sweeper"].startswith("node-a:")
    [retry] = [t for t in trials if t.user_attrs.get("retry_of") == killed.number]
    assert retry.state == TrialState.COMPLETE and retry.params == killed.params
    assert retry.user_attrs["sweeper"].startswith("node-b:")
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 6 and not [t for t in trials if t.state == TrialState.RUNNING]
    assert len({tuple(sorted(t.params.items())) for t in complete}) == 6  # no trial asked twice
    hosts = {t.user_attrs["sweeper"].split(":")[0] for t in complete}
    assert hosts == {"node-a", "node-b"}  # both machines did trials
    runs = _trial_runs(tmp_path / "a", tmp_path / "b")
    for trial in complete:  # the summaries' runs and the study agree
        assert runs[trial.number]["status"] == "ok" and runs[trial.number]["val_acc_best"] == pytest.approx(trial.value)


@pytest.mark.slow  # a subprocess of train.py
def test_a_conditional_space_searches_momentum_for_sgd_only_and_its_runs_are_named_and_summarised(tmp_path: Path):
    sweep_dir = tmp_path / "sweep"
    args = [*TINY, "trainer.max_epochs=1", "hydra.sweeper.n_trials=6", f"hydra.sweep.dir={sweep_dir}"]
    args.append("hydra.sweeper.custom_search_space=mnist_lab.sweeps.spaces.optimizer_space")
    result = run_script("train.py", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    trials = study(sweep_dir / "optuna.journal").trials
    assert all(t.state == TrialState.COMPLETE for t in trials) and len(trials) == 6
    for trial in trials:  # momentum exactly where the optimizer has it; the model's own space replaced
        sgd = trial.params["model/optimizer"] == "sgd"
        assert set(trial.params) == {"model/optimizer", "model.optimizer.lr"} | (
            {"model.optimizer.momentum"} if sgd else set()
        )
    assert {t.params["model/optimizer"] for t in trials} == {"sgd", "adamw"}
    runs = _trial_runs(sweep_dir)
    for trial in trials:
        [folder] = [
            p.parent.parent
            for p in sweep_dir.glob("*/.hydra/overrides.yaml")
            if f"trial={trial.number}" in p.read_text()
        ]
        assert ("momentum=" in folder.name) == (trial.params["model/optimizer"] == "sgd")
        assert runs[trial.number]["val_acc_best"] == pytest.approx(trial.value)
    summary = (sweep_dir / "summary.md").read_text()
    assert summary.count("| ok |") == 6 and summary.count("momentum=") == sum(
        "model.optimizer.momentum" in t.params for t in trials
    )
    again = run_script("train.py", *args, cwd=tmp_path)  # resumed: nothing left to ask
    assert again.returncode == 0 and len(study(sweep_dir / "optuna.journal").trials) == 6


@pytest.mark.slow  # a subprocess of train.py
def test_a_search_of_accuracy_against_size_lists_its_pareto_front_first_and_draws_it(tmp_path: Path):
    sweep_dir = tmp_path / "sweep"
    args = [*TINY, "model=mlp", "trainer.max_epochs=1", "hydra.sweeper.n_trials=6", f"hydra.sweep.dir={sweep_dir}"]
    args += ["hydra.sweeper.direction=[maximize,minimize]", "hydra.sweeper.objectives=[val_acc_best,parameters]"]
    result = run_script("train.py", *args, "model.net.hidden=choice(4,16,64)", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Pruning is off: Optuna cannot prune a study of several objectives" in result.stdout
    tried = study(sweep_dir / "optuna.journal", "mlp")
    assert len(tried.directions) == 2 and all(t.state == TrialState.COMPLETE for t in tried.trials)
    assert not any(t.intermediate_values for t in tried.trials)  # the runs did not report to the trials
    runs = _trial_runs(sweep_dir)
    for trial in tried.trials:  # what each run reports is what its trial was told
        assert trial.values == pytest.approx([runs[trial.number]["val_acc_best"], runs[trial.number]["parameters"]])
        assert runs[trial.number]["parameters"] == 784 * (h := trial.params["model.net.hidden"]) + h + 10 * h + 10
    rows = list(csv.DictReader((sweep_dir / "summary.csv").open()))
    front = [r["run"] for r in rows if r["pareto"] == "yes"]
    assert front and rows[: len(front)] == [r for r in rows if r["pareto"] == "yes"]  # the front first
    optimal = {runs[t.number]["checkpoint"].split("/checkpoints/")[0].rsplit("/", 1)[-1] for t in tried.best_trials}
    assert set(front) == optimal
    assert (sweep_dir / "summary.md").read_text().startswith(f"Pareto front: {len(front)} of 6 runs")
    results = OmegaConf.load(sweep_dir / "optimization_results.yaml")
    assert sorted(t.trial for t in results.pareto_front) == sorted(t.number for t in tried.best_trials)
    assert (sweep_dir / "optuna_pareto_front.png").stat().st_size and (sweep_dir / "summary.png").stat().st_size


def test_objectives_are_one_per_direction_and_a_fold_search_takes_one(tmp_path: Path):
    from mnist_lab.sweeps.study import objectives, several_objectives

    sweeper = OmegaConf.create({"direction": ["maximize", "minimize"], "objectives": ["val_acc_best"]})
    with pytest.raises(ConfigError, match=r"hydra.sweeper.direction gives 2 direction\(s\)"):
        objectives(sweeper, "val_acc_best")
    sweeper.objectives = ["val_acc_best", "size"]
    with pytest.raises(ConfigError, match=r"objectives are val_acc_best, test_acc, test_loss, parameters, ms_per"):
        objectives(sweeper, "val_acc_best")
    sweeper.objectives = ["val_acc_best", "ms_per_image"]
    assert objectives(sweeper, "val_acc_best") == ["val_acc_best", "ms_per_image"]
    with pytest.raises(ConfigError, match=r"data.folds=3 is not allowed with several objectives"):
        several_objectives(sweeper, 3, {})
