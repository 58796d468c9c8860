"""Lightning project vs. a hand-written PyTorch loop: same network, data, batch size and precision.

    python bench/throughput.py [override ...] [--models cnn mlp logreg] [--repeats 3]
                               [--precision auto|32-true|bf16-mixed] [--batch-size N]

The Lightning side is a normal run of this project (conf/train.yaml: callbacks, TensorBoard
logger, progress bar, per-step logging), minus validation and testing. The plain side is the
loop anyone would write. They take turns step by step inside one run: before each Lightning
step the plain loop takes one step on its own copy of the network, so both sample the same
seconds of this shared 2-core machine, whose speed drifts by 20-30 % from minute to minute.
A Lightning step is timed from the end of the plain step before it to the start of the next
one: loop, hooks, data fetch, logging and, once an epoch, the epoch-end work of the callbacks
(checkpoint, histograms, CSV). The first epoch is a warm-up; ``--repeats`` epochs are timed.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from mnist_lab.cli import build_trainer
from mnist_lab.config import register_resolvers

CONF = Path(__file__).resolve().parents[1] / "conf"


class PlainLoop:
    """Shuffle, index a batch, scale, forward, backward, step: on the DataModule's training tensors."""

    def __init__(self, cfg, datamodule: L.LightningDataModule) -> None:
        self.images, self.labels = datamodule.train_set.images, datamodule.train_set.labels
        module = instantiate(cfg.model)
        self.net, self.mean, self.std = module.net, module.hparams.mean, module.hparams.std
        self.layout = torch.channels_last if module.hparams.channels_last else torch.contiguous_format  # as the module's
        self.optimizer = instantiate(cfg.model.optimizer)(params=self.net.parameters())
        steps = -(-len(self.labels) // cfg.data.batch_size)
        self.scheduler = None
        if cfg.model.get("scheduler"):
            self.scheduler = instantiate(cfg.model.scheduler)(self.optimizer, total_steps=steps * cfg.trainer.max_epochs)
        self.batch_size, self.label_smoothing = cfg.data.batch_size, cfg.model.get("label_smoothing", 0.0)
        self.bf16 = str(cfg.trainer.precision).startswith("bf16")
        self.batches = iter(())

    def step(self) -> float:
        """One training step on the next batch of its own shuffled epoch; returns its seconds."""
        idx = next(self.batches, None)
        if idx is None:
            self.batches = iter(torch.randperm(len(self.labels)).split(self.batch_size))
            idx = next(self.batches)
        start = time.perf_counter()
        x = ((self.images[idx].unsqueeze(1).float() / 255 - self.mean) / self.std).contiguous(memory_format=self.layout)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            loss = F.cross_entropy(self.net(x), self.labels[idx], label_smoothing=self.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.scheduler:
            self.scheduler.step()
        return time.perf_counter() - start


class TakeTurns(L.Callback):
    """Runs a plain-loop step before each Lightning step; keeps both sides' step times per epoch."""

    def __init__(self, plain: PlainLoop) -> None:
        self.plain_loop, self.lap_start = plain, None
        self.plain: list[list[float]] = []
        self.lightning: list[list[float]] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.plain.append([])
        self.lightning.append([])

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.lap_start is not None:  # the first lap of an epoch carries the previous epoch's end
            self.lightning[-1].append(time.perf_counter() - self.lap_start)
        self.plain[-1].append(self.plain_loop.step())
        self.lap_start = time.perf_counter()


def take_turns(cfg) -> tuple[list[list[float]], list[list[float]], int]:
    """(plain, Lightning) step times of each epoch but the first (a warm-up): ``trainer.max_epochs - 1``
    epochs; and the number of training images in an epoch."""
    L.seed_everything(0, workers=True)
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")  # once: both sides train on these tensors (fit's own setup sees them loaded)
    turns = TakeTurns(PlainLoop(cfg, datamodule))
    model, trainer = instantiate(cfg.model), build_trainer(cfg)
    trainer.callbacks.append(turns)
    trainer.fit(model, datamodule=datamodule)
    return turns.plain[1:], turns.lightning[1:], len(datamodule.train_set)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["cnn", "mlp", "logreg"])
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs, after one warm-up epoch")
    parser.add_argument("--precision", default=None, help="default: the project's automatic choice")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the model's configured batch size")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for both sides, e.g. model.optimizer.fused=false")
    args = parser.parse_args()
    register_resolvers()
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    print(f"machine: {cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), lightning {L.__version__}")
    rows = []
    for name in args.models:
        overrides = [f"model={name}", f"trainer.max_epochs={args.repeats + 1}", "trainer.limit_val_batches=0",
                     "trainer.accelerator=cpu", "test=false"]
        overrides += [f"trainer.precision={args.precision}"] if args.precision else []
        overrides += [f"data.batch_size={args.batch_size}"] if args.batch_size else []
        with tempfile.TemporaryDirectory() as out, initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose("train", overrides=[*overrides, *args.overrides, f"output_dir={out}"])
            plain, lightning, images = take_turns(cfg)
        p_epochs, l_epochs = [sum(steps) for steps in plain], [sum(steps) for steps in lightning]
        epoch_ratios = [l_s / p_s for p_s, l_s in zip(p_epochs, l_epochs)]
        step_ms = [1000 * statistics.median([t for steps in side for t in steps]) for side in (plain, lightning)]
        rows.append((name, cfg.trainer.precision, cfg.data.batch_size, images, statistics.median(p_epochs),
                     statistics.median(l_epochs), sum(l_epochs) / sum(p_epochs), min(epoch_ratios), max(epoch_ratios), *step_ms))
    print(f"\n{'model':<7} {'precision':<10} {'batch':>5} {'plain img/s':>12} {'lightning img/s':>16} "
          f"{'plain s/epoch':>14} {'lightning s/epoch':>18} {'ratio':>6} {'epochs':>11} {'step ms':>13}")
    for name, precision, batch, n, p_s, l_s, ratio, low, high, p_ms, l_ms in rows:
        print(f"{name:<7} {precision:<10} {batch:>5} {n / p_s:>12,.0f} {n / l_s:>16,.0f} {p_s:>14.2f} {l_s:>18.2f} "
              f"{ratio:>6.3f} {low:>5.3f}-{high:.3f} {p_ms:>6.2f}/{l_ms:.2f}")
    print("s/epoch: median over the timed epochs; ratio: all timed Lightning time / all timed plain time (target <= 1.05);"
          " epochs: the range of the per-epoch ratios; step ms: median step, plain/Lightning")


if __name__ == "__main__":
    main()
