from __future__ import annotations

import os

import pytest
from hydra.errors import MissingConfigException
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf

from mnist_lab import hardware
from mnist_lab.building import build
from mnist_lab.command_line import EXTRAS, config_dirs, left_out_groups
from mnist_lab.data.contract import data_facts
from mnist_lab.errors import ConfigError, DataError
from mnist_lab.training.builders import build_trainer
from mnist_lab.training.checkpoint_io import AtomicCheckpointIO
from mnist_lab.training.run import check
from mnist_lab.training.settings import validate_run
from support import CONF


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def option_overrides() -> list:
    """Every option of the config groups a user picks from; MLflow's is slow to import (3 s), so a slow test."""
    groups = ("model", "trainer", "logger", "callbacks", "debug", "experiment")
    overrides = [f"{g}={o}" for g in groups for o in options(g)]
    overrides += [f"model/{g}={o}" for g in ("optimizer", "scheduler") for o in options(f"model/{g}")]
    return [pytest.param(o, marks=pytest.mark.slow) if o == "logger=mlflow" else o for o in overrides]


@pytest.mark.parametrize("override", option_overrides())
def test_every_config_option_composes_and_instantiates(make_cfg, override, tmp_path, monkeypatch):
    if extra := EXTRAS.get(tuple(override.split("="))):  # logger=mlflow, logger=wandb: skipped without their extra
        pytest.importorskip(extra[0], reason=f'{override} needs the {extra[1]} extra: pip install -e ".[{extra[1]}]"')
    monkeypatch.chdir(tmp_path)  # where logger=mlflow creates its outputs/mlflow.db
    cfg = make_cfg(override)
    OmegaConf.resolve(cfg)
    validate_run(cfg)
    model = instantiate(cfg.model)
    assert model.net(__import__("torch").zeros(2, 1, 28, 28)).shape == (2, 10)
    assert instantiate(cfg.data).batch_size == cfg.data.batch_size
    for section in ("logger", "callbacks"):
        for conf in (cfg.get(section) or {}).values():
            assert isinstance(instantiate(conf), get_class(conf._target_))


def test_the_trainer_writes_checkpoints_atomically_as_configured(make_cfg):
    trainer = build_trainer(make_cfg())
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)


def test_csv_data_config_needs_a_training_csv(make_cfg, tmp_path):
    cfg = make_cfg("data=csv", f"data.train_csv={tmp_path}/train.csv")
    assert cfg.data.train_csv.endswith("train.csv") and cfg.data.test_csv is None
    rows = ["label," + ",".join(f"pixel{i}" for i in range(784))] + [
        f"{label}," + ",".join(["0"] * 784) for label in (0, 1)
    ]
    (tmp_path / "test.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match="There is no training data: give data.train_csv"):
        data_facts(build(make_cfg("data=csv", f"data.test_csv={tmp_path}/test.csv").data))


def test_experiments_reproduce_the_tutorial_recipes(make_cfg):
    cnn = make_cfg("experiment=tutorial_cnn")
    assert cnn.model.optimizer._target_ == "torch.optim.Adam" and cnn.model.scheduler.lrs == [5e-4, 3e-4, 1e-4]
    assert cnn.model.optimizer.lr == 5e-4  # what the dashboards show as its lr
    assert (cnn.data.batch_size, cnn.model.net.dropout, cnn.trainer.max_epochs) == (50, 0.5, 3)
    logreg = make_cfg("experiment=tutorial_logreg")
    assert (logreg.model.optimizer._target_, logreg.model.optimizer.lr, logreg.data.batch_size) == (
        "torch.optim.SGD",
        0.5,
        100,
    )
    assert logreg.model.net._target_.endswith("LogReg") and logreg.trainer.max_steps == 1000
    mlp = make_cfg("experiment=tutorial_mlp")
    assert mlp.model.net.hidden == [10] and mlp.model.net.activation == "sigmoid" and mlp.trainer.max_epochs == 10


def test_command_line_overrides_still_apply_over_an_experiment(make_cfg):
    cfg = make_cfg("experiment=tutorial_cnn", "model.optimizer.lr=0.01", "seed=0")
    assert cfg.model.optimizer.lr == 0.01 and cfg.seed == 0


def test_unknown_model_name_lists_the_choices(make_cfg):
    with pytest.raises(MissingConfigException, match=r"Available options in .model.:\s+cnn\s+deep_cnn\s+logreg\s+mlp"):
        make_cfg("model=resnet")


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.net.dropout=1.5", "model.net.dropout=1.5 is not allowed: input should be less than 1"),
        ("model.optimizer.lr=0", "model.optimizer.lr=0 is not allowed: input should be greater than 0"),
        ("model.optimizer.lr=-0.1", "model.optimizer.lr=-0.1"),
        ("data.batch_size=0", "data.batch_size=0 is not allowed: input should be greater than 0"),
        ("trainer.max_epochs=0", "trainer.max_epochs=0 is not allowed"),
        ("data.val_size=60000", "data.val_size=60000 is not allowed: it must be smaller than the 60000"),
        ("data.val_size=-1", "data.val_size=-1 is not allowed: input should be greater than or equal to 0"),
        ("data.augment={rotation:10}", "data.augment.rotation=10 is not allowed: there is no such setting here"),
        ("model=deep_cnn model.net.width=0", "model.net.width=0 is not allowed: input should be greater than 0"),
        (
            "model=mlp model.net.activation=swish",
            "model.net.activation=swish is not allowed: input should be 'sigmoid', 'relu'",
        ),
        ("trainer.precision=16-mixed", "trainer.precision=16-mixed is not allowed: fp16 needs a GPU"),
        ("trainer.precision=fp8", "trainer.precision=fp8 is not allowed: input should be .*'bf16-mixed', '32-true'"),
        ("trainer=gpu", "trainer.accelerator=gpu is not allowed: no CUDA GPU"),
        (
            "++trainer.strategy=ddp_spawn",
            "trainer.strategy=ddp_spawn is not allowed: it cannot test after fit; use trainer=ddp",
        ),
        # Of the wrong type or out of range, whatever the key: the keys of train.yaml, every argument of a built object.
        ("seed=abc", "seed=abc is not allowed: input should be a valid integer"),
        ("torch_threads=-3", "torch_threads=-3 is not allowed: input should be greater than 0"),
        ("test=maybe", "test=maybe is not allowed: input should be a valid boolean"),
        (
            "optimized_metric=acc",
            "optimized_metric=acc is not allowed: input should be 'val_acc_best', 'test_acc' or 'test_loss'",
        ),
        ("trainer.max_epochs=1.5", "trainer.max_epochs=1.5 is not allowed: input should be a valid integer"),
        ("data.batch_size=abc", "data.batch_size=abc is not allowed: input should be a valid integer"),
        ("data.augment=5", "data.augment=5 is not allowed: input should be an object"),
        ("model.net.dropout=abc", "model.net.dropout=abc is not allowed: input should be a valid number"),
        ("model.optimizer.lr=abc", "model.optimizer.lr=abc is not allowed: input should be a valid number"),
        (
            "callbacks.progress_bar.refresh_rate=abc",
            "callbacks.progress_bar.refresh_rate=abc is not allowed: input should be a valid integer",
        ),
        # true is no integer (YAML's booleans are not 1 and 0 here).
        ("trainer.max_epochs=true", "trainer.max_epochs=True is not allowed: input should be a valid integer"),
        ("data.batch_size=true", "data.batch_size=True is not allowed: input should be a valid integer"),
        # What Lightning checks only once the model is built, refused before.
        (
            "trainer.max_steps=-3",
            "trainer.max_steps=-3 is not allowed: input should be -1 or greater than or equal to 0",
        ),
        ("trainer.limit_train_batches=-1", "trainer.limit_train_batches=-1 is not allowed: input should be greater"),
        # A key that nothing reads, and a typo of one that is read.
        ("+foo=1", "foo=1 is not allowed: there is no such setting here"),
        ("+trainer.max_epoch=5", "trainer.max_epoch=5 is not allowed: .* the nearest one is trainer.max_epochs"),
        ("+model.net.dropot=0.1", "model.net.dropot=0.1 is not allowed: .* the nearest one is model.net.dropout"),
        ("+seeds=3", "seeds=3 is not allowed: there is no such setting here; the nearest one is seed"),
        ("trainer.log_every_n_steps=0", "trainer.log_every_n_steps=0 is not allowed: input should be greater than 0"),
        (
            "model.optimizer.weight_decay=-1",
            "model.optimizer.weight_decay=-1 is not allowed: input should be greater than or",
        ),
        (
            "model=mlp model.net.hidden=[abc]",
            r"model.net.hidden\[0\]=abc is not allowed: input should be a valid integer",
        ),
    ],
)
def test_bad_settings_are_refused_before_any_work(make_cfg, override, message):
    if "gpu" in override and __import__("torch").cuda.is_available():
        pytest.skip("a GPU is present")
    cfg = make_cfg(*override.split())
    if override == "trainer=gpu":  # the fixture pins the CPU; ask for the GPU again
        cfg.trainer.accelerator = "gpu"
    with pytest.raises(ConfigError, match=message):
        check(cfg)  # what a run checks before it writes, seeds or builds the model


@pytest.mark.parametrize("cpu_bf16, expected", [(True, "bf16-mixed"), (False, "32-true")])
def test_auto_precision_is_bf16_only_where_the_cpu_multiplies_it(monkeypatch, cpu_bf16, expected):
    monkeypatch.setattr(hardware, "cpu_has_bf16", lambda: cpu_bf16)
    assert hardware.auto_precision("cpu") == expected


def test_tiny_models_train_in_fp32_unless_told_otherwise(make_cfg, monkeypatch):
    monkeypatch.setattr(hardware, "cpu_has_bf16", lambda: True)  # where the CNNs would train in bf16
    assert make_cfg("model=cnn").trainer.precision == make_cfg("model=deep_cnn").trainer.precision == "bf16-mixed"
    for model in ("mlp", "logreg"):
        assert make_cfg(f"model={model}").trainer.precision == "32-true"
        assert make_cfg(f"model={model}", "trainer=gpu").trainer.precision == "32-true"
        assert make_cfg(f"model={model}", "trainer.precision=bf16-mixed").trainer.precision == "bf16-mixed"


def test_models_pick_their_batch_size_unless_told_otherwise(make_cfg):
    sizes = {name: make_cfg(f"model={name}").data.batch_size for name in ("cnn", "deep_cnn", "mlp", "logreg")}
    assert sizes == {"cnn": 256, "deep_cnn": 128, "mlp": 512, "logreg": 512}
    assert make_cfg("experiment=tutorial_cnn").data.batch_size == 50
    assert make_cfg("model=cnn", "data.batch_size=64").data.batch_size == 64


def test_nvml_check_is_dropped_only_where_the_driver_is_missing(monkeypatch):
    def missing(name):
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setenv("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    monkeypatch.setattr(hardware.ctypes, "CDLL", lambda name: object())
    hardware.skip_nvml_check_without_driver()
    assert os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] == "1"
    monkeypatch.setattr(hardware.ctypes, "CDLL", missing)
    hardware.skip_nvml_check_without_driver()
    assert "PYTORCH_NVML_BASED_CUDA_CHECK" not in os.environ


@pytest.mark.parametrize("gpus, expected", [(4, [[0], [1], [2], [3], [0], [1]]), (1, [1] * 6), (0, [1] * 6)])
def test_side_by_side_jobs_spread_over_the_gpus(make_cfg, gpus, expected):
    devices, base = [], make_cfg("trainer=gpu" if gpus else "trainer=cpu")
    base.trainer.accelerator = "gpu" if gpus else "cpu"  # the fixture pins the CPU
    for job in range(6):
        cfg = base.copy()
        hardware.gpu_for_job(cfg.trainer, job, gpus)
        devices.append(cfg.trainer.devices)
    assert devices == expected
    cfg = make_cfg("trainer=gpu", "trainer.devices=2")
    cfg.trainer.accelerator = "gpu"
    hardware.gpu_for_job(cfg.trainer, 5, 4)
    assert cfg.trainer.devices == 2  # a job that asks for several GPUs itself is left alone


def test_a_left_out_groups_choices_include_those_of_a_config_dir(tmp_path):
    """eval.py's data is left out (the checkpoint's): `data.x=1` alone says to choose one, from every folder."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "bars.yaml").write_text("_target_: my_data.BarsDataModule\n")
    folders = config_dirs(CONF / "eval.yaml", ["ckpt_path=a.ckpt", f"--config-dir={tmp_path}"])
    assert folders == [CONF, tmp_path]
    choices = left_out_groups(CONF / "eval.yaml", folders)["data"]
    assert "bars" in choices and "mnist" in choices and "image_folder" in choices


@pytest.mark.parametrize(
    "script, overrides, name",
    [
        ("eval", [], "eval"),
        ("predict", [], "predict"),
        ("train", [], "train"),
        ("train", ["experiment=cnn_best"], "cnn_best"),
    ],
)
def test_a_run_folder_and_its_log_are_named_by_task_name_else_by_the_script(script, overrides, name):
    from support import compose_config

    hydra = compose_config(*overrides, config_name=script, hydra_keys=True).hydra
    assert hydra.job.name == name and hydra.run.dir.endswith(f"_{name}") and hydra.sweep.dir.endswith(f"_{name}")
