from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from mnist_lab.training.checkpoint_io import AtomicCheckpointIO
from mnist_lab.training.run_folder import resume_checkpoint
from support import CONF, run_script, start_script

SLOW_MLP = [
    "model=mlp",
    "model.net.dropout=0.2",
    "model.net.hidden=[64]",
    "trainer.max_epochs=3",
    "trainer.limit_train_batches=100",
    "data.batch_size=64",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "data.eval_batch_size=500",
    "trainer.deterministic=true",
    "callbacks.progress_bar.refresh_rate=0",
    "trainer.accelerator=cpu",
]


def start_and_stop(run_dir: Path, sig: int) -> subprocess.Popen:
    """Start a run and send it ``sig`` in the middle of its second epoch (where support.probes.PauseAt holds it)."""
    paused = run_dir.parent / f"{run_dir.name}.paused"
    proc = start_script(
        "train.py",
        *SLOW_MLP,
        "+callbacks.pause._target_=support.probes.PauseAt",
        f"+callbacks.pause.path={paused}",
        "+callbacks.pause.batch=50",
        f"hydra.run.dir={run_dir}",
        cwd=run_dir.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 300
    while not paused.exists():
        assert proc.poll() is None and time.time() < deadline, "the run ended before it could be stopped"
        time.sleep(0.05)
    proc.send_signal(sig)
    proc.wait(timeout=120)
    return proc


def result(run_dir: Path) -> dict:
    return json.loads((run_dir / "result.json").read_text())


@pytest.mark.slow  # a subprocess of train.py, eval.py or predict.py
def test_killed_run_resumes_in_its_folder_and_matches_an_uninterrupted_run(tmp_path: Path):
    whole = tmp_path / "whole"
    assert run_script("train.py", *SLOW_MLP, f"hydra.run.dir={whole}", cwd=tmp_path).returncode == 0

    killed = tmp_path / "killed"
    proc = start_and_stop(killed, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    assert result(killed)["status"] == "running"
    torch.load(killed / "checkpoints" / "last.ckpt", weights_only=True)  # complete, loadable
    original_config = (killed / ".hydra" / "config.yaml").read_text()

    resumed = run_script("train.py", f"resume={killed}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Continuing from" in resumed.stdout
    done, reference = result(killed), result(whole)
    assert done["status"] == "ok" and done["epochs"] == reference["epochs"] == 3
    for key in ("val_acc_best", "test_acc", "test_loss"):
        assert done[key] == reference[key], key
    assert (killed / ".hydra" / "config.yaml").read_text() == original_config
    assert list((killed / ".hydra").glob("resumed_*/config.yaml"))
    assert [line.split(",")[0] for line in (killed / "epochs.csv").read_text().splitlines()[1:]] == ["0", "1", "2"]
    assert not (tmp_path / "outputs").exists()  # nothing written anywhere else

    # A finished run folder is never trained over again.
    again = run_script("train.py", f"resume={killed}", cwd=tmp_path)
    assert again.returncode != 0 and "already holds a finished run" in again.stderr


@pytest.mark.slow  # a subprocess of train.py, eval.py or predict.py
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])  # Ctrl-C; kill, timeout and SLURM's preemption
def test_a_stopped_run_exits_non_zero_and_leaves_a_resumable_checkpoint(tmp_path: Path, sig):
    run_dir = tmp_path / "run"
    proc = start_and_stop(run_dir, sig)
    out = proc.stdout.read()
    assert proc.returncode == 128 + sig  # as the shell reports a process the signal ended: 130, 143
    assert f"Interrupted ({sig.name}). Continue with: python train.py resume={run_dir}" in out
    assert result(run_dir)["status"] == "interrupted" and result(run_dir)["signal"] == sig.name
    assert (run_dir / "checkpoints" / "interrupted.ckpt").is_file()
    resumed = run_script("train.py", f"resume={run_dir}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert result(run_dir)["status"] == "ok"


def test_an_unfinished_run_continues_from_its_last_epoch_else_the_save_made_when_it_was_stopped(tmp_path: Path):
    assert resume_checkpoint(tmp_path) is None
    (tmp_path / "checkpoints").mkdir()
    saves = ["checkpoints/interrupted.ckpt", "hpc_ckpt_2.ckpt", "hpc_ckpt_10.ckpt", "checkpoints/last.ckpt"]
    for i, name in enumerate(saves):  # Ctrl-C or SIGTERM; Lightning's SLURM requeue saves; an epoch's end
        (tmp_path / name).touch()
        assert resume_checkpoint(tmp_path) == tmp_path / saves[i]  # each one preferred to those before it


def test_checkpoint_writes_are_atomic(tmp_path: Path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"step": 1, "weights": torch.ones(1000)}, path)

    def dies_half_way(obj, f):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt  # the process is stopped mid-write

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"step": 2, "weights": torch.zeros(1000)}, path)
    assert torch.load(path, weights_only=True)["step"] == 1


@pytest.mark.slow  # a subprocess of train.py, eval.py or predict.py
def test_non_finite_loss_stops_the_run_naming_step_and_cause(tmp_path: Path):
    run_dir = tmp_path / "run"
    proc = run_script(
        "train.py",
        "model/optimizer=sgd",
        "model.optimizer.lr=1e12",
        "model.scheduler=null",
        "trainer.limit_train_batches=50",
        "callbacks.progress_bar.refresh_rate=0",
        "trainer.accelerator=cpu",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert (
        last.startswith("error: train_loss became")
        and "by step" in last
        and "learning rate (1e+12) is probably too high" in last
    )
    assert result(run_dir)["status"] == "failed"


@pytest.mark.slow  # a subprocess of train.py, eval.py or predict.py
@pytest.mark.parametrize(
    "override, message",
    [
        ("model.net.dropout=1.5", "model.net.dropout=1.5 is not allowed"),
        ("model=resnet", "Could not find 'model/resnet'"),
        ("experiment=nope", "Could not find 'experiment/nope'"),
        ("data.batch_size=-3", "data.batch_size=-3 is not allowed"),
        ("trainer.max_epochs=abc", "trainer.max_epochs=abc is not allowed"),
        ("+foo=1", "foo=1 is not allowed: there is no such setting here"),
        # An experiment is global (no experiment.* keys): nothing to choose first, unlike eval.py's data.
        ("experiment.foo=1", "experiment.foo=1 is not allowed: there is no such setting here"),
        # Hydra's own refusal suggests +trainer.max_epoch=5, which only adds a key nothing reads.
        (
            "trainer.max_epoch=5",
            "trainer.max_epoch=5 is not allowed: there is no such setting here; the nearest one is trainer.max_epochs",
        ),
        ("trainer.fast_dev_run=true", "trainer.fast_dev_run is not in the config; add it with +trainer.fast_dev_run"),
    ],
)
def test_config_errors_stop_before_any_work(tmp_path: Path, override, message):
    proc = run_script("train.py", override, cwd=tmp_path)
    assert proc.returncode != 0 and message in proc.stderr and "Traceback" not in proc.stderr
    assert "Seed set" not in proc.stdout + proc.stderr and "parameters" not in proc.stdout  # refused first
    assert not (tmp_path / "outputs").exists()  # no run folder left behind


@pytest.mark.slow  # a subprocess of eval.py
def test_eval_names_the_data_to_choose_before_changing_its_settings(tmp_path: Path):
    """eval.py tests on the checkpoint's data (data: null): data.<key> alone has nothing to change."""
    proc = run_script("eval.py", "ckpt_path=any.ckpt", "data.eval_batch_size=2048", cwd=tmp_path)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: data.eval_batch_size=2048: no data config is chosen here, so it has no settings to change; "
        f"choose one first: data=<{'|'.join(sorted(p.stem for p in (CONF / 'data').glob('*.yaml')))}> "
        "data.eval_batch_size=2048"
    )
    assert not (tmp_path / "outputs").exists()
