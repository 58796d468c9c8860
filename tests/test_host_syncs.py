"""A training step reads nothing back to the host (on a GPU: no host sync), counted on the CPU."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from mnist_lab.models.classifier import NonFiniteLoss
from mnist_lab.training.run import train
from support.host_reads import CountHostReads, HostReads


@pytest.mark.parametrize("model", ["cnn", "logreg", "mlp"])
def test_a_training_step_reads_nothing_back_but_on_logging_steps(make_cfg, model):
    cfg = make_cfg(
        f"model={model}",
        "data.batch_size=8",  # what is counted does not grow with the batch
        "trainer.max_steps=100",
        "trainer.limit_val_batches=0",
        "test=false",
        "callbacks.progress_bar.refresh_rate=5",
    )
    counter = CountHostReads(where=True)
    _, objects = train(cfg, callbacks=[counter])
    trainer, module = objects["trainer"], objects["model"]
    assert counter.steps == 100
    assert counter.per_step <= 0.2, counter.reads.sites  # before: 2.2 (the loss check, progress-bar values)
    # The progress bar still shows the logged per-step values.
    shown = trainer.progress_bar_callback.get_metrics(trainer, module)
    assert isinstance(shown["train_loss_step"], float) and 0 <= shown["train_acc_step"] <= 1


def test_a_non_finite_loss_is_remembered_on_the_device_and_reported_with_its_step_and_rate():
    guard = NonFiniteLoss()
    with HostReads() as reads:
        guard.update(torch.tensor(2.3), step=0, lr=0.1)
        guard.update(torch.tensor(float("inf")), step=7, lr=0.5)
        guard.update(torch.tensor(float("nan")), step=8, lr=0.25)  # later ones do not overwrite the first
    assert reads.count == 0
    with pytest.raises(
        FloatingPointError, match=r"became inf at step 7 \(epoch 2\); the learning rate \(0.5\) is probably too high"
    ):
        guard.check(epoch=2)


def test_a_finite_loss_passes_the_check():
    guard = NonFiniteLoss()
    guard.check(epoch=0)  # nothing recorded yet
    guard.update(torch.tensor(0.7), step=0, lr=0.1)
    guard.check(epoch=0)


class NoSyncBetween(L.Callback):
    """Makes any host sync an error from the start of step ``first`` to the end of step ``last``."""

    def __init__(self, first: int, last: int) -> None:
        self.first, self.last = first, last

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == self.first:
            torch.cuda.set_sync_debug_mode("error")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx == self.last:
            torch.cuda.set_sync_debug_mode("default")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_a_gpu_the_data_stays_there_and_steps_between_logging_never_sync(make_cfg):
    cfg = make_cfg("trainer.accelerator=gpu", "trainer.max_steps=48", "trainer.limit_val_batches=0", "test=false")
    try:
        _, objects = train(cfg, callbacks=[NoSyncBetween(first=2, last=47)])  # Lightning writes logs at step 50
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert objects["datamodule"].train_set.images.device.type == "cuda"
