"""Callbacks that record what a run did, for tests and benchmarks that run train.py as a process."""

from __future__ import annotations

import json
import time
from pathlib import Path

import lightning as L


class ShardProbe(L.Callback):
    """Each rank writes the sample indices its sampler yields, one file per rank and epoch (the DDP test)."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        sampler = trainer.train_dataloader.sampler
        batches = [b.tolist() for b in sampler][: int(trainer.num_training_batches)]
        record = {
            "rank": trainer.global_rank,
            "world": trainer.world_size,
            "epoch": trainer.current_epoch,
            "batches": batches,
        }
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / f"rank{trainer.global_rank}_epoch{trainer.current_epoch}.json").write_text(json.dumps(record))


class FirstStep(L.Callback):
    """Writes when the first training batch starts (bench/startup.py)."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: object, batch_idx: int
    ) -> None:
        if not self.path.exists():
            self.path.write_text(json.dumps({"time": time.time()}))


class PauseAt(L.Callback):
    """Writes ``path`` as training batch ``batch`` of epoch ``epoch`` starts, and waits there for the test's signal:
    a run stopped at a known step, not after a guessed time. Once: a resumed run (its config names this callback
    too) finds ``path`` written and goes on."""

    def __init__(self, path: str, epoch: int = 1, batch: int = 10) -> None:
        self.path, self.epoch, self.batch = Path(path), epoch, batch

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: object, batch_idx: int
    ) -> None:
        if (trainer.current_epoch, batch_idx) == (self.epoch, self.batch) and not self.path.exists():
            self.path.write_text("paused")
            # Until the signal: SIGKILL ends the process, SIGINT raises here, and on SIGTERM Lightning stops the
            # run as this step ends.
            while not trainer.received_sigterm:
                time.sleep(0.01)


class InterruptAt(L.Callback):
    """Ctrl-C as epoch ``epoch`` starts, once (``path`` records it): a run stopped in-process, to be resumed."""

    def __init__(self, path: str, epoch: int = 1) -> None:
        self.path, self.epoch = Path(path), epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.epoch and not self.path.exists():
            self.path.write_text("interrupted")
            raise KeyboardInterrupt
