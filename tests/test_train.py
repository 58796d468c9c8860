from __future__ import annotations

import csv
import json
import logging
import signal
import subprocess
from pathlib import Path

import lightning as L
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tqdm.auto import tqdm

from mnist_lab.data.datamodule import ImageDataModule
from mnist_lab.models.classifier import ImageClassifier, load_classifier
from mnist_lab.training.run import run, train
from support import run_script, start_script

TINY = ["debug=tiny", "data.batch_size=32", "data.eval_batch_size=64", "trainer.accelerator=cpu"]


@pytest.mark.slow  # a subprocess of train.py, eval.py or predict.py
def test_train_py_end_to_end_writes_checkpoint_events_and_config(tmp_path: Path):
    run_dir = tmp_path / "run"
    result = run_script("train.py", *TINY, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Test accuracy:" in result.stdout
    assert "Tip:" not in result.stdout + result.stderr and "LeafSpec" not in result.stderr  # known noise hidden
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    checkpoints = sorted((run_dir / "checkpoints").glob("epoch*.ckpt"))
    assert len(checkpoints) == 1 and (run_dir / "checkpoints" / "last.ckpt").is_file()
    events = EventAccumulator(str(run_dir)).Reload()
    assert {"train_loss_step", "val_acc", "val_acc_best", "test_acc"} <= set(events.Tags()["scalars"])
    assert not (tmp_path / "lightning_logs").exists()

    # The checkpoint holds only plain data and rebuilds the network by itself.
    raw = torch.load(checkpoints[0], weights_only=True, map_location="cpu")
    model = ImageClassifier.load_from_checkpoint(checkpoints[0], map_location="cpu").eval()
    dm = ImageDataModule(val_size=0)
    dm.setup()
    x, _ = dm.on_after_batch_transfer((dm.test_set.images[:64], dm.test_set.labels[:64]), 0)
    state = {k.removeprefix("net."): v for k, v in raw["state_dict"].items() if k.startswith("net.")}
    twin = ImageClassifier(**raw["hyper_parameters"]).eval()
    twin.net.load_state_dict(state)
    with torch.no_grad():
        assert torch.equal(model(x).argmax(1), twin(x).argmax(1))
        assert torch.allclose(model(x), twin(x))


@pytest.mark.slow  # a subprocess of train.py, eval.py or predict.py
def test_two_runs_in_the_same_second_get_their_own_folders(tmp_path: Path):
    procs = [
        start_script(
            "train.py",
            *TINY,
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=1",
            "test=false",
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    assert all(p.wait(timeout=600) == 0 for p in procs)
    runs = list((tmp_path / "outputs" / "runs").iterdir())
    assert len(runs) == 2 and all((r / "checkpoints" / "last.ckpt").is_file() for r in runs)


def test_seed_makes_runs_repeatable_including_seed_zero(make_cfg):
    overrides = [*TINY, "model=mlp", "logger=[]", "callbacks=none", "test=false", "trainer.deterministic=true"]
    first = train(make_cfg(*overrides, "seed=0"))[0]
    again = train(make_cfg(*overrides, "seed=0"))[0]
    other = train(make_cfg(*overrides, "seed=1"))[0]
    assert first == again and first != other


def test_seed_null_trains_unseeded(make_cfg):
    overrides = [*TINY, "model=logreg", "logger=[]", "callbacks=none", "test=false", "seed=null"]
    runs = [train(make_cfg(*overrides))[0]["train_loss_epoch"] for _ in range(2)]
    assert runs[0] != runs[1]


def checkpoints(cfg) -> list[str]:
    return sorted(p.name for p in (Path(cfg.output_dir) / "checkpoints").glob("*.ckpt"))


@pytest.mark.parametrize("no_validation", ["data.val_size=0", "trainer.limit_val_batches=0"])
def test_without_validation_the_last_weights_are_kept_and_tested_under_a_name_without_val_acc(
    make_cfg, caplog, no_validation
):
    cfg = make_cfg(*TINY, "model=logreg", "trainer.max_epochs=2", no_validation)
    with caplog.at_level(logging.INFO, logger="mnist_lab"):
        metrics, objects = train(cfg)
    assert "val_acc_best" not in metrics and "Test accuracy:" in caplog.text
    assert checkpoints(cfg) == ["epoch01.ckpt", "last.ckpt"] and objects["checkpoint"].endswith("epoch01.ckpt")


def test_with_validation_the_best_checkpoint_names_its_val_acc(make_cfg):
    cfg = make_cfg(*TINY, "model=logreg")
    acc = train(cfg)[0]["val_acc_best"]
    assert checkpoints(cfg) == [f"epoch00-val_acc{acc:.4f}.ckpt", "last.ckpt"]


def test_two_validations_per_epoch_keep_epochs_csv_per_epoch_and_the_best_of_all(make_cfg):
    cfg = make_cfg(*TINY, "model=logreg", "trainer.max_epochs=2", "++trainer.val_check_interval=0.5", "logger=csv")
    metrics, objects = train(cfg)
    with (Path(cfg.output_dir) / "csv" / "metrics.csv").open() as f:
        val = [float(r["val_acc"]) for r in csv.DictReader(f) if r.get("val_acc")]
    with (Path(cfg.output_dir) / "epochs.csv").open() as f:
        epochs = [r["epoch"] for r in csv.DictReader(f)]
    assert len(val) == 4 and epochs == ["0", "1"]
    assert metrics["val_acc_best"] == pytest.approx(max(val))
    assert f"val_acc{max(val):.4f}.ckpt" in objects["checkpoint"]


@pytest.mark.parametrize(
    "overrides, steps",
    [
        (["++trainer.accumulate_grad_batches=2", "trainer.max_epochs=2"], 10),  # 10 batches an epoch, 5 optimizer steps
        (["trainer.max_epochs=null", "trainer.max_steps=25"], 25),  # runs into a third epoch
    ],
)
def test_onecycle_spans_exactly_the_optimizer_steps_taken(make_cfg, overrides, steps):
    cfg = make_cfg(*TINY, "model=logreg", "logger=[]", "test=false", *overrides)
    trainer = train(cfg)[1]["trainer"]
    scheduler = trainer.lr_scheduler_configs[0].scheduler
    assert trainer.global_step == steps and scheduler.total_steps == steps and scheduler.last_epoch == steps


def test_a_run_without_loggers_trains_and_tests(make_cfg):
    assert "test_acc" in train(make_cfg(*TINY, "model=logreg", "logger=[]"))[0]


def test_ctrl_c_while_testing_marks_the_run_interrupted(make_cfg, monkeypatch):
    def ctrl_c(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(ImageClassifier, "test_step", ctrl_c)
    cfg = make_cfg(*TINY, "model=logreg")
    sigint = signal.getsignal(signal.SIGINT)  # Lightning ignores further Ctrl-C while it shuts down
    try:
        # Lightning >= 2.4 exits (SystemExit 1); older ones returned from trainer.test as if it had finished.
        with pytest.raises((KeyboardInterrupt, SystemExit)):
            run(cfg)
    finally:
        signal.signal(signal.SIGINT, sigint)
    assert json.loads((Path(cfg.output_dir) / "result.json").read_text())["status"] == "interrupted"
    assert not list(tqdm._instances), "a progress bar was left open; tqdm would draw it again at exit"


def test_a_run_resumed_with_no_epoch_left_reports_what_it_reached(make_cfg, monkeypatch):
    """A trial retried after its process died while testing: its epochs are done, its best val_acc is not lost."""
    cfg = make_cfg(*TINY, "model=logreg")
    test_step = ImageClassifier.test_step
    monkeypatch.setattr(ImageClassifier, "test_step", lambda *args: (_ for _ in ()).throw(KeyboardInterrupt))
    sigint = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises((KeyboardInterrupt, SystemExit)):
            run(cfg)
    finally:
        signal.signal(signal.SIGINT, sigint)
    [best] = Path(cfg.output_dir, "checkpoints").glob("epoch*.ckpt")
    reached = torch.load(best, weights_only=True)["callbacks"]
    [score] = [v["best_model_score"] for k, v in reached.items() if k.startswith("ModelCheckpoint")]
    monkeypatch.setattr(ImageClassifier, "test_step", test_step)
    run(cfg)  # continues in its folder from last.ckpt: no epoch left, then tests
    result = json.loads((Path(cfg.output_dir) / "result.json").read_text())
    assert result["status"] == "ok" and result["val_acc_best"] == pytest.approx(float(score))
    assert result["test_acc"] is not None


def test_ema_checkpoints_and_tests_the_averaged_weights(make_cfg):
    # decay 0.99 over 10 steps: the average is still close to the initial weights, far from the raw ones.
    cfg = make_cfg(*TINY, "model=mlp", "callbacks=ema", "callbacks.ema.decay=0.99")
    metrics, objects = train(cfg)
    ckpt = torch.load(objects["checkpoint"], weights_only=True)
    averaged, raw = ckpt["state_dict"], ckpt["current_model_state"]
    assert all(not torch.equal(averaged[k], raw[k]) for k in averaged if k.startswith("net."))

    def test_acc(weights: dict) -> float:
        model = load_classifier(objects["checkpoint"])
        model.load_state_dict(weights)
        trainer = L.Trainer(accelerator="cpu", limit_test_batches=2, logger=False, enable_progress_bar=False)
        return trainer.test(model, datamodule=ImageDataModule(eval_batch_size=64), verbose=False)[0]["test_acc"]

    # train.py's test after fit is the averaged model's, as eval.py's would be, not the raw weights'.
    assert metrics["test_acc"] == test_acc(averaged) != test_acc(raw)


@pytest.mark.slow  # MLflow's import and SQLite store: 3 s
def test_mlflow_logger_records_the_hparams_tab_and_results_per_run_folder(make_cfg, tmp_path):
    pytest.importorskip("mlflow", reason='logger=mlflow needs the mlflow extra: pip install -e ".[mlflow]"')
    from mlflow.tracking import MlflowClient

    store = f"sqlite:///{tmp_path}/mlflow.db"
    cfg = make_cfg(*TINY, "model=logreg", "logger=mlflow", f"logger.mlflow.tracking_uri={store}")
    metrics, _ = train(cfg)
    client = MlflowClient(store)
    [mlrun] = client.search_runs([client.get_experiment_by_name("mnist-lab").experiment_id])
    assert mlrun.info.run_name == Path(cfg.output_dir).name and mlrun.data.tags["run_dir"] == cfg.output_dir
    assert mlrun.data.params["model"] == "LogReg" and float(mlrun.data.params["lr"]) == cfg.model.optimizer.lr
    assert {"batch_size", "max_epochs", "optimizer", "scheduler", "seed", "precision"} <= set(mlrun.data.params)
    assert mlrun.data.metrics["test_acc"] == pytest.approx(metrics["test_acc"])
    assert mlrun.data.metrics["val_acc_best"] == pytest.approx(metrics["val_acc_best"])


@pytest.mark.slow  # a subprocess of train.py, eval.py or predict.py
def test_progress_bars_written_to_a_pipe_carry_no_cursor_escapes(tmp_path: Path):
    limits = [f"trainer.limit_{stage}_batches=3" for stage in ("train", "val", "test")]
    run = run_script(
        "train.py", "model=logreg", "trainer.max_epochs=2", "callbacks.progress_bar.refresh_rate=1", *limits,
        "trainer.accelerator=cpu", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Validation" in run.stdout and "\x1b[" not in run.stdout + run.stderr  # no "[A" in a log file


def test_the_foreach_ema_averages_as_torchs_ema_does(make_cfg):
    """EMA's three foreach ops a step give torch's per-tensor EMA (get_ema_avg_fn), buffers included."""
    from torch.optim.swa_utils import AveragedModel, get_ema_avg_fn

    cfg = make_cfg(
        *TINY, "model=deep_cnn", "data.batch_size=8", "callbacks=ema", "callbacks.ema.decay=0.9", "test=false"
    )
    reference: dict = {}

    class TorchsEMA(L.Callback):  # torch's AveragedModel beside the callback's, updated from the same steps
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            if "model" not in reference:
                reference["model"] = AveragedModel(pl_module, avg_fn=get_ema_avg_fn(0.9), use_buffers=True)
            reference["model"].update_parameters(pl_module)

    _, objects = train(cfg, callbacks=[TorchsEMA()])
    [ema] = [cb for cb in objects["trainer"].callbacks if type(cb).__name__ == "EMA"]
    ours, theirs = ema._average_model.module.state_dict(), reference["model"].module.state_dict()
    floats = [k for k, v in theirs.items() if v.is_floating_point() and k.startswith("net.")]
    assert len(floats) > 20 and any("running_mean" in k for k in floats)
    for key in floats:
        torch.testing.assert_close(ours[key], theirs[key], rtol=1e-5, atol=1e-6, msg=key)
    assert int(ema._average_model.n_averaged) == int(reference["model"].n_averaged) == objects["trainer"].global_step


@pytest.mark.slow  # torch.compile's first compilation takes seconds
def test_model_compile_compiles_the_network_for_training_only(make_cfg):
    cfg = make_cfg(*TINY, "model=logreg", "model.compile=true")
    metrics, objects = train(cfg)
    assert objects["model"].net._compiled_call_impl is not None and metrics["test_acc"] > 0.5
    assert load_classifier(objects["checkpoint"]).net._compiled_call_impl is None  # eval.py answers at once


def test_a_run_reports_its_size_and_when_asked_its_inference_time(make_cfg):
    from mnist_lab.training.run import measures

    _, objects = train(make_cfg(*TINY, "model=logreg"))
    plain = measures(objects["model"], objects["datamodule"])
    assert plain == {"parameters": 7850}
    timed = measures(objects["model"], objects["datamodule"], wanted=["ms_per_image"])
    assert 0 < timed["ms_per_image"] < 5 and timed["parameters"] == 7850
