"""Lightning project vs. a hand-written PyTorch loop: same network, data, batch size, precision and device.

    python bench/throughput.py [override ...] [--models cnn mlp logreg] [--repeats 3] [--device auto|cpu|cuda]
                               [--precision auto|32-true|bf16-mixed] [--batch-size N] [--compile] [--turn-steps N]

The Lightning side is a normal run of this project (conf/train.yaml: callbacks, TensorBoard
logger, progress bar, per-step logging), minus validation and testing. The plain side is the
loop anyone would write, on the same device with the data resident there. They take turns inside
one run: before each turn of Lightning steps the plain loop takes as many steps on its own copy
of the network, so both sample the same stretch of a machine whose speed drifts (a shared 2-core
CPU: 20-30 % from minute to minute). A Lightning turn is timed from the end of the plain turn
before it to the start of the next one: loop, hooks, data fetch, logging and, once an epoch, the
epoch-end work of the callbacks (checkpoint, histograms, CSV). On a GPU every turn starts and
ends with a synchronisation, so turns are whole epochs there by default (a sync every step
would stop the CPU from running ahead of the GPU, which is what makes GPU training fast).
The first epoch is a warm-up (and compilation, with --compile); ``--repeats`` epochs are timed.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from hydra.utils import instantiate

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # support: what the tests generate and run

from mnist_lab.data.mnist import to_unit  # noqa: E402
from mnist_lab.resolvers import register_resolvers  # noqa: E402
from mnist_lab.training.run import train  # noqa: E402
from support import compose_config  # noqa: E402


def clock(device: torch.device) -> float:
    """Seconds, once everything queued on ``device`` has run."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


class PlainLoop:
    """Shuffle, index a batch, scale, forward, backward, step: on the DataModule's training tensors and their device."""

    def __init__(self, cfg, datamodule: L.LightningDataModule, compile: bool) -> None:
        self.images, self.labels = datamodule.train_set.images, datamodule.train_set.labels
        self.device = self.images.device
        module = instantiate(cfg.model).to(self.device)
        self.net, self.mean, self.std = module.net, module.hparams.mean, module.hparams.std
        if compile:
            self.net.compile()
        # The module's memory layout.
        self.layout = torch.channels_last if module.hparams.channels_last else torch.contiguous_format
        self.optimizer = instantiate(cfg.model.optimizer)(params=self.net.parameters())
        steps = -(-len(self.labels) // cfg.data.batch_size)
        self.scheduler = None
        if cfg.model.get("scheduler"):
            self.scheduler = instantiate(cfg.model.scheduler)(
                self.optimizer, total_steps=steps * cfg.trainer.max_epochs
            )
        self.batch_size, self.label_smoothing = cfg.data.batch_size, cfg.model.get("label_smoothing", 0.0)
        self.bf16 = str(cfg.trainer.precision).startswith("bf16")
        self.batches = iter(())

    def step(self) -> None:
        """One training step on the next batch of its own shuffled epoch."""
        idx = next(self.batches, None)
        if idx is None:
            self.batches = iter(torch.randperm(len(self.labels), device=self.device).split(self.batch_size))
            idx = next(self.batches)
        x = ((to_unit(self.images[idx]) - self.mean) / self.std).contiguous(memory_format=self.layout)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            loss = F.cross_entropy(self.net(x), self.labels[idx], label_smoothing=self.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.scheduler:
            self.scheduler.step()


class TakeTurns(L.Callback):
    """Runs ``turn`` plain-loop steps before each ``turn`` Lightning steps (0: an epoch); keeps both
    sides' (seconds, steps) per turn, per epoch."""

    def __init__(self, cfg, compile: bool, turn: int) -> None:
        self.cfg, self.compile, self.turn, self.lap_start, self.lap_steps = cfg, compile, turn, None, 0
        self.plain: list[list[tuple[float, int]]] = []
        self.lightning: list[list[tuple[float, int]]] = []

    def on_train_start(self, trainer, pl_module) -> None:
        # The DataModule is set up on the trainer's device by now: both sides train on its tensors.
        # The Lightning side compiles through the project's own model.compile=true (measure()).
        self.plain_loop = PlainLoop(self.cfg, trainer.datamodule, self.compile)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.plain.append([])
        self.lightning.append([])

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        turn = self.turn or trainer.num_training_batches
        if batch_idx % turn:
            return
        start = clock(self.plain_loop.device)
        if self.lap_start is not None:  # the first lap of an epoch carries the previous epoch's end
            self.lightning[-1].append((start - self.lap_start, self.lap_steps))
        self.lap_steps = min(turn, trainer.num_training_batches - batch_idx)
        for _ in range(self.lap_steps):
            self.plain_loop.step()
        self.lap_start = clock(self.plain_loop.device)
        self.plain[-1].append((self.lap_start - start, self.lap_steps))


def take_turns(cfg, compile: bool, turn: int) -> tuple[list, list, int]:
    """(plain, Lightning) turns of each epoch but the first (a warm-up): ``trainer.max_epochs - 1``
    epochs; and the number of training images in an epoch."""
    turns = TakeTurns(cfg, compile, turn)
    _, objects = train(cfg, callbacks=[turns])
    warm_up = [sum(s for s, _ in side[0]) for side in (turns.plain, turns.lightning)]
    print(f"warm-up epoch (with compilation, if any): plain {warm_up[0]:.1f} s, Lightning {warm_up[1]:.1f} s")
    return turns.plain[1:], turns.lightning[1:], len(objects["datamodule"].train_set)


def device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return f"{cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} threads"


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["cnn", "mlp", "logreg"])
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs, after one warm-up epoch")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--precision", default=None, help="default: the project's automatic choice")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the model's configured batch size")
    parser.add_argument("--compile", action="store_true", help="torch.compile the network on both sides")
    parser.add_argument(
        "--turn-steps", type=int, default=None, help="steps per turn; 0: an epoch (default: 1 on CPU, 0 on GPU)"
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for both sides, e.g. model.optimizer.fused=false")
    return parser.parse_args()


def measure(name: str, args: argparse.Namespace, device: str, turn: int) -> tuple:
    """One model's row: its settings, and plain against Lightning per epoch and per step."""
    overrides = [
        f"model={name}",
        f"trainer.max_epochs={args.repeats + 1}",
        "trainer.limit_val_batches=0",
        "seed=0",
        f"trainer.accelerator={'gpu' if device == 'cuda' else 'cpu'}",
        "test=false",
    ]
    overrides += [f"trainer.precision={args.precision}"] if args.precision else []
    overrides += [f"data.batch_size={args.batch_size}"] if args.batch_size else []
    overrides += ["model.compile=true"] if args.compile else []
    with tempfile.TemporaryDirectory() as out:
        cfg = compose_config(*overrides, *args.overrides, f"output_dir={out}")
        plain, lightning, images = take_turns(cfg, args.compile, turn)
    p_epochs, l_epochs = ([sum(s for s, _ in turns) for turns in side] for side in (plain, lightning))
    epoch_ratios = [l_s / p_s for p_s, l_s in zip(p_epochs, l_epochs)]
    step_ms = [1000 * statistics.median([s / n for turns in side for s, n in turns]) for side in (plain, lightning)]
    medians = (statistics.median(p_epochs), statistics.median(l_epochs))
    ratios = (sum(l_epochs) / sum(p_epochs), min(epoch_ratios), max(epoch_ratios))
    return (name, cfg.trainer.precision, cfg.data.batch_size, images, *medians, *ratios, *step_ms)


def print_table(rows: list[tuple]) -> None:
    print(
        f"\n{'model':<7} {'precision':<10} {'batch':>5} {'plain img/s':>12} {'lightning img/s':>16} "
        f"{'plain s/epoch':>14} {'lightning s/epoch':>18} {'ratio':>6} {'epochs':>11} {'step ms':>13}"
    )
    for name, precision, batch, n, p_s, l_s, ratio, low, high, p_ms, l_ms in rows:
        print(
            f"{name:<7} {precision:<10} {batch:>5} {n / p_s:>12,.0f} {n / l_s:>16,.0f} {p_s:>14.2f} {l_s:>18.2f} "
            f"{ratio:>6.3f} {low:>5.3f}-{high:.3f} {p_ms:>6.2f}/{l_ms:.2f}"
        )
    print(
        "s/epoch: median over the timed epochs; ratio: all timed Lightning time / all timed plain time;"
        " epochs: the range of the per-epoch ratios; step ms: median turn / its steps, plain/Lightning"
    )


def main() -> None:
    args = arguments()
    device = args.device if args.device != "auto" else "cuda" if torch.cuda.is_available() else "cpu"
    turn = args.turn_steps if args.turn_steps is not None else 0 if device == "cuda" else 1
    register_resolvers()
    print(
        f"device: {device_name(device)}; torch {torch.__version__}, lightning {L.__version__}; "
        f"{'compiled, ' if args.compile else ''}turns of {turn or 'an epoch of'} steps"
    )
    print_table([measure(name, args, device, turn) for name in args.models])


if __name__ == "__main__":
    main()
