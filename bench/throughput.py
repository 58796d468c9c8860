"""Lightning project vs. a hand-written PyTorch loop: same network, data, batch size and precision.

    python bench/throughput.py [override ...] [--models cnn mlp logreg] [--repeats 5]
                               [--precision auto|32-true|bf16-mixed] [--batch-size N]

The Lightning side is a normal run of this project (conf/train.yaml: callbacks, TensorBoard
logger, progress bar, per-step logging), minus validation and testing. The plain side is the
loop anyone would write. They take turns inside one run: before each Lightning epoch the plain
loop trains one epoch of its own copy of the network, so each pair is timed within the same
half-minute (this shared 2-core machine drifts by 20-30 % from minute to minute). The first
pair is a warm-up; ``--repeats`` pairs are timed. A Lightning epoch runs from its start to the
next one's: the epoch-end work of the callbacks (checkpoint, histograms, CSV) counts, the
once-per-run work at the end of training does not.
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

    def epoch(self) -> float:
        self.net.train()
        start = time.perf_counter()
        for idx in torch.randperm(len(self.labels)).split(self.batch_size):
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
    """Runs a plain-loop epoch before each Lightning epoch and times both."""

    def __init__(self, plain: PlainLoop) -> None:
        self.plain_loop, self.start = plain, None
        self.plain: list[float] = []
        self.lightning: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if self.start is not None:
            self.lightning.append(time.perf_counter() - self.start)
        self.plain.append(self.plain_loop.epoch())
        self.start = time.perf_counter()


def take_turns(cfg) -> tuple[list[float], list[float]]:
    """(plain, Lightning) seconds of epochs run in alternation, all but the first (warm-up) and the
    last (a Lightning epoch with no next one to end its lap): ``trainer.max_epochs - 2`` each."""
    L.seed_everything(0, workers=True)
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")  # once: both sides train on these tensors (fit's own setup sees them loaded)
    turns = TakeTurns(PlainLoop(cfg, datamodule))
    model, trainer = instantiate(cfg.model), build_trainer(cfg)
    trainer.callbacks.append(turns)
    trainer.fit(model, datamodule=datamodule)
    return turns.plain[1:-1], turns.lightning[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["cnn", "mlp", "logreg"])
    parser.add_argument("--repeats", type=int, default=5, help="timed epochs per side, alternating")
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
        # A warm-up pair, the timed pairs, and a last Lightning epoch that only ends the last lap.
        overrides = [f"model={name}", f"trainer.max_epochs={args.repeats + 2}", "trainer.limit_val_batches=0",
                     "trainer.accelerator=cpu", "test=false"]
        overrides += [f"trainer.precision={args.precision}"] if args.precision else []
        overrides += [f"data.batch_size={args.batch_size}"] if args.batch_size else []
        with tempfile.TemporaryDirectory() as out, initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose("train", overrides=[*overrides, *args.overrides, f"output_dir={out}"])
            plain, lightning = take_turns(cfg)
        ratios = [l_s / p_s for p_s, l_s in zip(plain, lightning)]
        rows.append((name, cfg.trainer.precision, cfg.data.batch_size, statistics.median(plain),
                     statistics.median(lightning), statistics.median(ratios), min(ratios), max(ratios)))
    n = 55_000
    print(f"\n{'model':<7} {'precision':<10} {'batch':>5} {'plain img/s':>12} {'lightning img/s':>16} "
          f"{'plain s/epoch':>14} {'lightning s/epoch':>18} {'ratio':>6} {'pairs':>11}")
    for name, precision, batch, p_s, l_s, ratio, low, high in rows:
        print(f"{name:<7} {precision:<10} {batch:>5} {n / p_s:>12,.0f} {n / l_s:>16,.0f} {p_s:>14.2f} {l_s:>18.2f} "
              f"{ratio:>6.3f} {low:>5.3f}-{high:.3f}")
    print("s/epoch: median over the timed epochs; ratio: median over the pairs of Lightning epoch / the plain epoch"
          " just before it (target <= 1.05)")


if __name__ == "__main__":
    main()
