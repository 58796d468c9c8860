"""A training step reads nothing back to the host (on a GPU: no host sync), counted on the CPU."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from mnist_lab.building import build
from mnist_lab.data.contract import data_facts
from mnist_lab.models.classifier import EpochSums
from mnist_lab.training.run import train
from support import MODELS, NETWORKS
from support.host_reads import CountHostReads, HostReads
from support.ops import FIRST, LAST, CountStepOps, bare_loop_ops


def every_model(*recipes: str) -> list:
    """``model=<m>`` for every model of conf/model, then ``recipes``; the convolutional ones and the recipes
    (3 s each on a CPU) are slow tests: the full suite holds them to it, the quick tier the rest."""
    quick = [f"model={m}" for m in MODELS if not NETWORKS[m].endswith("CNN")]
    runs = [*(f"model={m}" for m in MODELS), *recipes]
    return [run if run in quick else pytest.param(run, marks=pytest.mark.slow) for run in runs]


@pytest.mark.parametrize("run", every_model())
def test_a_training_step_reads_nothing_back_but_on_logging_steps(make_cfg, run):
    cfg = make_cfg(
        run,
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


def test_the_epoch_sums_take_no_host_read_and_a_non_finite_loss_stops_the_run_naming_step_and_rate():
    sums, logits, labels = EpochSums(), torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0])
    with HostReads() as reads:
        sums.update(torch.tensor(2.3), logits, labels)
        sums.update(torch.tensor(0.7), logits, labels)
    assert reads.count == 0
    assert {k: float(v) for k, v in sums.means().items()} == pytest.approx(
        {"train_loss_epoch": 1.5, "train_acc_epoch": 0.5}
    )
    sums.check(step=1, epoch=0, lr=0.1)  # finite
    sums.update(torch.tensor(float("inf")), logits, labels)
    sums.update(torch.tensor(0.5), logits, labels)  # a later finite loss does not hide it
    with pytest.raises(
        FloatingPointError, match=r"became inf by step 3 \(epoch 2\); the learning rate \(0.5\) is probably too high"
    ):
        sums.check(step=3, epoch=2, lr=0.5)
    sums.reset()
    sums.check(step=4, epoch=3, lr=0.5)  # a new epoch starts its sums again


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
    cfg = make_cfg("trainer.accelerator=gpu", "trainer.max_steps=60", "trainer.limit_val_batches=0", "test=false")
    try:
        # Steps 49 (Lightning writes logs) and 59 (the run's last: the loss is checked) may read.
        _, objects = train(cfg, callbacks=[NoSyncBetween(first=2, last=47)])
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert objects["datamodule"].train_set.images.device.type == "cuda"


@pytest.mark.parametrize("run", every_model("experiment=cnn_best"))
def test_a_steady_state_step_adds_few_ops_to_the_models_own_and_reads_nothing(make_cfg, run):
    """On a GPU each op is a kernel launch: the project's step may add only a few to a bare loop's (cnn_best's
    EMA: ten more)."""
    most_extra = 20 if run == "experiment=cnn_best" else 10
    cfg = make_cfg(
        run, "data.batch_size=8", f"trainer.max_steps={LAST + 1}", "trainer.limit_val_batches=0", "test=false"
    )
    counter = CountStepOps()
    _, objects = train(cfg, callbacks=[counter])
    datamodule = objects["datamodule"]
    bare = bare_loop_ops(build(cfg.model, **data_facts(datamodule)), datamodule, str(cfg.trainer.precision))
    extra = counter.mode.ops.copy()
    extra.subtract(bare.ops)
    assert counter.reads_per_step == 0, counter.mode.ops
    assert counter.per_step - bare.count / (LAST - FIRST) <= most_extra, +extra
