"""Callback for bench/startup.py: records when the first training batch starts."""

import json
import time
from pathlib import Path

import lightning as L


class FirstStep(L.Callback):
    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if not self.path.exists():
            self.path.write_text(json.dumps({"time": time.time()}))
