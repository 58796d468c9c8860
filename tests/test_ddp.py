from __future__ import annotations

import json
from pathlib import Path

import pytest

from support import run_script


@pytest.mark.slow  # a subprocess of train.py, eval.py or predict.py
def test_ddp_on_two_cpu_processes_gives_each_rank_its_own_shard(tmp_path: Path):
    probe = tmp_path / "probe"
    result = run_script(
        "train.py",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "model=logreg",
        "trainer.max_epochs=2",
        "trainer.limit_train_batches=20",
        "trainer.limit_val_batches=2",
        "data.batch_size=128",
        "data.eval_batch_size=500",
        "torch_threads=1",
        "callbacks.progress_bar.refresh_rate=0",
        "+callbacks.shard_probe._target_=support.probes.ShardProbe",
        f"+callbacks.shard_probe.path={probe}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    [run_dir] = (tmp_path / "outputs" / "runs").iterdir()  # rank 1 ran in rank 0's folder
    seen = {(r["rank"], r["epoch"]): r for r in (json.loads(p.read_text()) for p in probe.glob("*.json"))}
    assert set(seen) == {(0, 0), (1, 0), (0, 1), (1, 1)} and all(r["world"] == 2 for r in seen.values())
    for epoch in (0, 1):
        shards = [{i for b in seen[(rank, epoch)]["batches"] for i in b} for rank in (0, 1)]
        assert len(seen[(0, epoch)]["batches"]) == len(seen[(1, epoch)]["batches"]) == 20
        assert all(len(s) == 20 * 128 for s in shards) and not shards[0] & shards[1]
    assert seen[(0, 0)]["batches"] != seen[(0, 1)]["batches"]  # reshuffled each epoch
    outcome = json.loads((run_dir / "result.json").read_text())
    assert outcome["status"] == "ok" and outcome["epochs"] == 2 and outcome["test_acc"] > 0.8


@pytest.mark.slow  # a subprocess of train.py, eval.py or predict.py
def test_ddp_spawn_is_refused_with_a_test_and_trains_without_one(tmp_path: Path):
    spawn = [
        "model=logreg",
        "debug=tiny",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "++trainer.strategy=ddp_spawn",
        "torch_threads=1",
        "callbacks.progress_bar.refresh_rate=0",
    ]
    refused = run_script("train.py", *spawn, f"hydra.run.dir={tmp_path / 'refused'}", cwd=tmp_path)
    assert refused.returncode != 0 and refused.stderr.strip().splitlines()[-1] == (
        "error: trainer.strategy=ddp_spawn is not allowed: it cannot test after fit; use trainer=ddp, or test=false."
    )
    assert not (tmp_path / "refused" / "checkpoints").exists()
    trained = run_script("train.py", *spawn, "test=false", f"hydra.run.dir={tmp_path / 'trained'}", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    outcome = json.loads((tmp_path / "trained" / "result.json").read_text())
    assert outcome["status"] == "ok" and outcome["val_acc_best"] > 0.5 and outcome["test_acc"] is None
