"""Lightning project vs. a hand-written PyTorch loop: same network, data, batch size and precision.

    python bench/throughput.py [override ...] [--models cnn mlp logreg] [--repeats 3]
                               [--precision auto|32-true|bf16-mixed] [--batch-size N]

The Lightning side is a normal run of this project (conf/train.yaml: callbacks, TensorBoard
logger, progress bar, per-step logging), minus validation and testing. Both sides train
three epochs on the 55,000 training images; the second (warm) one is timed from its start to the
next one's, on the Lightning side with everything a normal run does at the end of an epoch
(checkpoint, histograms, CSV) but not what it does once at the end of training.
The two take turns ``--repeats`` times and each side's fastest epoch is reported.
"""

from __future__ import annotations

import argparse
import os
import platform
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
EPOCHS = 3  # the second is timed: warm, and followed by a whole epoch-end


class EpochTimer(L.Callback):
    """Seconds from the start of one training epoch to the start of the next: the epoch-end work of
    the callbacks (checkpoint, histograms, CSV) counts, the once-per-run work at the end does not."""

    def __init__(self) -> None:
        self.start: float | None = None
        self.times: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        now = time.perf_counter()
        if self.start is not None:
            self.times.append(now - self.start)
        self.start = now


def lightning_epoch(cfg) -> float:
    L.seed_everything(0, workers=True)
    datamodule = instantiate(cfg.data)
    model = instantiate(cfg.model)
    trainer = build_trainer(cfg)
    timer = EpochTimer()
    trainer.callbacks.append(timer)
    trainer.fit(model, datamodule=datamodule)
    return timer.times[1]


def plain_epoch(cfg) -> float:
    """The loop anyone would write: shuffle, index a batch, scale, forward, backward, step."""
    L.seed_everything(0)
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    images, labels = datamodule.train_set.images, datamodule.train_set.labels
    module = instantiate(cfg.model)
    net, mean, std = module.net, module.hparams.mean, module.hparams.std
    layout = torch.channels_last if module.hparams.channels_last else torch.contiguous_format  # as the module's
    optimizer = instantiate(cfg.model.optimizer)(params=net.parameters())
    steps = -(-len(labels) // cfg.data.batch_size)
    scheduler = instantiate(cfg.model.scheduler)(optimizer, total_steps=steps * EPOCHS) if cfg.model.get("scheduler") else None
    bf16 = str(cfg.trainer.precision).startswith("bf16")
    net.train()
    times = []
    for _ in range(EPOCHS):
        start = time.perf_counter()
        for idx in torch.randperm(len(labels)).split(cfg.data.batch_size):
            x = ((images[idx].unsqueeze(1).float() / 255 - mean) / std).contiguous(memory_format=layout)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = F.cross_entropy(net(x), labels[idx], label_smoothing=cfg.model.get("label_smoothing", 0.0))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler:
                scheduler.step()
        times.append(time.perf_counter() - start)
    return times[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["cnn", "mlp", "logreg"])
    parser.add_argument("--repeats", type=int, default=3,
                        help="plain and Lightning take turns this many times; each side's fastest counts")
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
        overrides = [f"model={name}", f"trainer.max_epochs={EPOCHS}", "trainer.limit_val_batches=0",
                     "trainer.accelerator=cpu", "test=false"]
        overrides += [f"trainer.precision={args.precision}"] if args.precision else []
        overrides += [f"data.batch_size={args.batch_size}"] if args.batch_size else []
        overrides += args.overrides
        times = []
        # Taking turns and keeping the best of each: this shared 2-core machine drifts by 20-30 %
        # from minute to minute, more than the difference being measured. Each turn is a fresh run.
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as out, initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
                cfg = compose("train", overrides=[*overrides, f"output_dir={out}"])
                times.append((plain_epoch(cfg), lightning_epoch(cfg)))
        plain, lightning = (min(side) for side in zip(*times))
        n = 55_000
        rows.append((name, cfg.trainer.precision, cfg.data.batch_size, n / plain, n / lightning, plain, lightning))
    print(f"\n{'model':<7} {'precision':<10} {'batch':>5} {'plain img/s':>12} {'lightning img/s':>16} {'plain s/epoch':>14} {'lightning s/epoch':>18} {'ratio':>6}")
    for name, precision, batch, p_ips, l_ips, p_s, l_s in rows:
        print(f"{name:<7} {precision:<10} {batch:>5} {p_ips:>12,.0f} {l_ips:>16,.0f} {p_s:>14.2f} {l_s:>18.2f} {l_s / p_s:>6.3f}")
    print("ratio = Lightning epoch time / plain loop epoch time (target <= 1.05)")


if __name__ == "__main__":
    main()
