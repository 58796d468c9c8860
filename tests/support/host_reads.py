"""Count the reads of tensor values back to the host: each one is a host sync on a GPU.

``.item()``, ``float(t)``, ``bool(t)`` and ``if t:`` all run ``aten._local_scalar_dense``; counting
its calls finds the syncs of a training step on any device, the CPU included. (Reads inside a
kernel, such as CUDA's ``bincount``, are not seen; ``torch.cuda.set_sync_debug_mode`` sees those.)
"""

from __future__ import annotations

import traceback
from collections import Counter
from typing import Any

import lightning as L
import torch
from torch.utils._python_dispatch import TorchDispatchMode

READ = torch.ops.aten._local_scalar_dense.default


class HostReads(TorchDispatchMode):
    """A dispatch mode that counts host reads, and with ``where=True`` the line of code behind each."""

    def __init__(self, where: bool = False) -> None:
        super().__init__()
        self.count, self.where, self.sites = 0, where, Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None) -> Any:
        if func is READ:
            self.count += 1
            if self.where:
                frame = next(f for f in reversed(traceback.extract_stack()[:-1]) if "/torch/" not in f.filename)
                self.sites[f"{frame.filename}:{frame.lineno} {frame.line}"] += 1
        return func(*args, **(kwargs or {}))


class CountHostReads(L.Callback):
    """Counts the host reads of the training epochs (steps, logging, data; not validation or checkpoints)."""

    def __init__(self, where: bool = False) -> None:
        self.reads, self.steps, self.counting = HostReads(where), 0, False

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.reads.__enter__()
        self.counting = True

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.steps += 1

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.reads.__exit__(None, None, None)
        self.counting = False

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if self.counting:
            self.on_train_epoch_end(trainer, pl_module)

    @property
    def per_step(self) -> float:
        return self.reads.count / max(self.steps, 1)
