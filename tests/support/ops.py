"""Tensor ops dispatched per training step, by a run of this project and by a bare loop over the same module.

Small models on a GPU are launch-bound: a step takes as long as the kernels it launches, one per op.
Counting the ops dispatched (``TorchDispatchMode``) measures that on the CPU, exactly and without
noise. Steps FIRST to LAST are counted, past the first steps' one-off work.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from mnist_lab.building import build
from mnist_lab.data.augment import random_distortion
from mnist_lab.data.mnist import to_unit
from support.host_reads import READ

FIRST, LAST = 5, 45  # the steady-state steps counted: 40 of them


class Ops(TorchDispatchMode):
    """Counts every op dispatched while active, by name; host reads are among them."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None) -> Any:
        self.ops[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))

    @property
    def count(self) -> int:
        return sum(self.ops.values())

    @property
    def reads(self) -> int:
        return self.ops[READ.overloadpacket.__name__]


class CountStepOps(L.Callback):
    """Counts the ops from the start of step FIRST to the start of step LAST: whole steps, each with the
    fetch of the next batch, the hooks, the optimizer, the schedule and the logging."""

    def __init__(self) -> None:
        self.mode = Ops()

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, idx: int) -> None:
        if trainer.global_step == FIRST:
            self.mode.__enter__()
        elif trainer.global_step == LAST:
            self.mode.__exit__(None, None, None)

    @property
    def per_step(self) -> float:
        return self.mode.count / (LAST - FIRST)

    @property
    def reads_per_step(self) -> float:
        return self.mode.reads / (LAST - FIRST)


def bare_loop_ops(model: L.LightningModule, datamodule: Any, precision: str) -> Ops:
    """The ops of LAST - FIRST steps of the loop anyone would write over ``model`` (its network and input
    scaling), the same batches augmented alike, precision and optimizer class: fetch, forward, loss,
    backward, step, and nothing else."""
    optimizer = build(model.hparams.optimizer)(params=model.parameters())
    loader = datamodule._loader(datamodule.train_set, datamodule.batch_size, shuffle=True)
    batches, mode = iter(loader), Ops()
    for step in range(LAST):
        if step == FIRST:
            mode.__enter__()
        images, y = next(batches)
        x = to_unit(images)
        if datamodule.augment:
            x = random_distortion(x, datamodule.augment)
        with torch.autocast(x.device.type, torch.bfloat16, enabled=precision.startswith("bf16")):
            loss = F.cross_entropy(model(x), y, label_smoothing=model.hparams.label_smoothing)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    mode.__exit__(None, None, None)
    return mode
