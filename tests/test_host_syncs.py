"""A training step reads nothing back to the host (on a GPU: no host sync), counted on the CPU."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

from mnist_lab.cli import build_trainer
from mnist_lab.host_reads import CountHostReads, HostReads
from mnist_lab.module import NonFiniteLoss


@pytest.mark.parametrize("model", ["cnn", "logreg", "mlp"])
def test_a_training_step_reads_nothing_back_but_on_logging_steps(make_cfg, model):
    cfg = make_cfg(f"model={model}", "data.batch_size=32", "trainer.max_steps=100", "trainer.limit_val_batches=0", "test=false",
                   "callbacks.progress_bar.refresh_rate=5")
    counter = CountHostReads(where=True)
    trainer = build_trainer(cfg)
    trainer.callbacks.append(counter)
    module = instantiate(cfg.model)
    trainer.fit(module, datamodule=instantiate(cfg.data))
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
    with pytest.raises(FloatingPointError, match=r"became inf at step 7 \(epoch 2\); the learning rate \(0.5\) is probably too high"):
        guard.check(epoch=2)


def test_a_finite_loss_passes_the_check():
    guard = NonFiniteLoss()
    guard.check(epoch=0)  # nothing recorded yet
    guard.update(torch.tensor(0.7), step=0, lr=0.1)
    guard.check(epoch=0)
