"""A callback for the DDP test: each rank writes the sample indices its sampler yields."""

import json
from pathlib import Path

import lightning as L


class ShardProbe(L.Callback):
    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        sampler = trainer.train_dataloader.sampler
        batches = [b.tolist() for b in sampler][: int(trainer.num_training_batches)]
        record = {"rank": trainer.global_rank, "world": trainer.world_size, "epoch": trainer.current_epoch, "batches": batches}
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / f"rank{trainer.global_rank}_epoch{trainer.current_epoch}.json").write_text(json.dumps(record))
