"""Lightning callbacks that fill TensorBoard and the run folder with what a run learned."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any, Optional

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, EMAWeightAveraging, OnExceptionCheckpoint, TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from pydantic import NonNegativeInt
from torchmetrics.classification import MulticlassConfusionMatrix

from mnist_lab import figures
from mnist_lab.data.contract import unit_images
from mnist_lab.data.mnist import DIGITS


def tensorboards(trainer: L.Trainer) -> list[TensorBoardLogger]:
    return [lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]


class ProgressBar(TQDMProgressBar):
    """Lightning's TQDM bar, plus the latest per-step training values (``show``).

    They are logged without ``prog_bar=True``, which would make Lightning turn them into Python
    numbers after every step (a host sync each on a GPU); here each logged value is read once
    (Lightning hands out a new ``detach()`` of it at every redraw, so it is known by its memory).
    """

    def __init__(
        self,
        show: tuple[str, ...] = ("train_loss_step", "train_acc_step"),
        refresh_rate: NonNegativeInt = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(refresh_rate=refresh_rate, **kwargs)
        self.show = tuple(show)
        self.read: dict[str, tuple[torch.Tensor, float]] = {}  # key -> (the logged tensor, its value)

    def get_metrics(
        self, trainer: L.Trainer, pl_module: L.LightningModule
    ) -> dict[str, int | str | float | dict[str, float]]:
        shown = super().get_metrics(trainer, pl_module)
        for key in self.show:
            value = trainer.callback_metrics.get(key)
            if value is None:
                continue
            if key not in self.read or self.read[key][0].data_ptr() != value.data_ptr():
                self.read[key] = (value, float(value))
            shown[key] = self.read[key][1]
        return shown

    def init_validation_tqdm(self) -> Tqdm:
        if sys.stdout.isatty():
            return super().init_validation_tqdm()
        # In a file or a pipe (a SLURM log, `| tee`), a bar on the line below the epoch's is drawn with
        # cursor-up escapes ("[A"); there it takes the epoch bar's line and leaves nothing behind.
        return Tqdm(
            desc=self.validation_description,
            position=2 * self.process_position,
            disable=self.is_disabled,
            leave=False,
            file=sys.stdout,
            bar_format=self.BAR_FORMAT,
        )

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        # Lightning leaves a stopped stage's bar open, and tqdm draws it again when the process exits.
        for bar in (self._train_progress_bar, self._val_progress_bar, self._test_progress_bar):
            if bar is not None:
                bar.close()


class WeightHistograms(Callback):
    """A histogram of every layer's weights and biases every ``every_n_epochs`` (0: never)."""

    def __init__(self, every_n_epochs: NonNegativeInt = 1) -> None:  # 0: never
        self.every_n_epochs = every_n_epochs

    @rank_zero_only
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.every_n_epochs or (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        for logger in tensorboards(trainer):
            for name, param in pl_module.net.named_parameters():
                index, kind = name.rsplit(".", 1)
                layer = type(pl_module.net.get_submodule(index)).__name__
                logger.experiment.add_histogram(
                    f"{index}_{layer}/{kind}", param.detach().float(), trainer.current_epoch
                )


class EpochHistory(Callback):
    """Per-epoch train/val loss and accuracy as ``epochs.csv`` and ``learning_curves.png`` in ``dirpath``."""

    COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc")

    def __init__(self, dirpath: str) -> None:
        self.dirpath = Path(dirpath)
        self.rows: list[dict[str, float]] = []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # A resumed run keeps the epochs it had already finished (restored by now, unlike in on_fit_start).
        path = self.dirpath / "epochs.csv"
        if path.is_file():
            with path.open() as f:
                rows = [{k: float(v) for k, v in row.items() if v} for row in csv.DictReader(f)]
            self.rows = [{**row, "epoch": int(row["epoch"])} for row in rows if row["epoch"] < trainer.current_epoch]

    @rank_zero_only
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = trainer.callback_metrics
        row = {"epoch": trainer.current_epoch}
        for column, key in (
            ("train_loss", "train_loss_epoch"),
            ("train_acc", "train_acc_epoch"),
            ("val_loss", "val_loss"),
            ("val_acc", "val_acc"),
        ):
            if key in metrics:
                row[column] = float(metrics[key])
        self.rows.append(row)
        self.dirpath.mkdir(parents=True, exist_ok=True)
        with (self.dirpath / "epochs.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.COLUMNS)
            writer.writeheader()
            writer.writerows(self.rows)

    # Drawn once, not every epoch: matplotlib takes ~0.3 s, as long as a whole MLP epoch.
    # TensorBoard has the live curves.
    @rank_zero_only
    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._draw()

    @rank_zero_only
    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._draw()

    def _draw(self) -> None:
        if self.rows:
            figures.save(figures.learning_curves(self.rows), self.dirpath / "learning_curves.png")


class TestFigures(Callback):
    """After testing: confusion matrix, misclassified digits and sample predictions, to TensorBoard and PNG."""

    def __init__(self, dirpath: str, max_images: NonNegativeInt = 64) -> None:
        self.dirpath, self.max_images = Path(dirpath), max_images

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.classes = list(getattr(pl_module, "classes", None) or DIGITS)
        self.confusion = MulticlassConfusionMatrix(len(self.classes)).to(pl_module.device)
        self.wrong: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self.samples: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def on_test_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        x, y = unit_images(batch[0]), batch[1]  # as the model read them: a DataModule's own may be uint8
        probs = outputs.float().softmax(-1)
        preds = probs.argmax(-1)
        self.confusion.update(preds, y)
        if sum(len(w[0]) for w in self.wrong) < self.max_images:
            miss = preds != y
            self.wrong.append((x[miss].cpu(), y[miss].cpu(), preds[miss].cpu()))
        if self.samples is None:
            self.samples = (x[:32].cpu(), y[:32].cpu(), probs[:32].cpu())

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        matrix = self.confusion.compute()  # on every rank: under DDP this is a collective
        if trainer.is_global_zero:
            self._draw(trainer, matrix)

    def _draw(self, trainer: L.Trainer, matrix: torch.Tensor) -> None:
        images, labels, preds = (
            (torch.cat(parts) for parts in zip(*self.wrong)) if self.wrong else (torch.empty(0),) * 3
        )
        made = {
            "confusion_matrix": figures.confusion_matrix_image(matrix),
            "misclassified": figures.misclassified_grid(images, labels, preds, self.max_images, self.classes),
            "predictions": figures.predictions_grid(*self.samples, classes=self.classes),
        }
        self.dirpath.mkdir(parents=True, exist_ok=True)
        for name, image in made.items():
            for logger in tensorboards(trainer):
                logger.experiment.add_image(f"test/{name}", np.asarray(image), trainer.global_step, dataformats="HWC")
            image.save(self.dirpath / f"{name}.png")


class EMA(EMAWeightAveraging):
    """Lightning's EMA of the weights, updated in three foreach ops a step, and tested as averaged.

    torch's ``AveragedModel.update_parameters`` updates each tensor on its own (for the deep CNN
    about 400 ops a step) and reads its count back to the host twice (two GPU syncs a step); here
    the floating-point weights and buffers move in one ``_foreach_lerp_``, the integer buffers are
    copied in one ``_foreach_copy_``, and the count is only incremented.

    Lightning 2.6 restores the raw training weights (``current_model_state``) whenever the callback
    has an averaged model, so ``trainer.test(ckpt_path="best")`` after ``fit`` would test the raw
    weights while validation chose the checkpoint on the averaged ones. Raw weights are needed
    only to resume training.
    """

    def __init__(self, decay: float = 0.999, **kwargs: Any) -> None:
        super().__init__(decay=decay, **kwargs)
        self.decay = decay
        self._pairs: Optional[tuple[list, list, list, list]] = None  # (averaged, model) floats, then integers
        self._started: Optional[bool] = None  # whether the average holds weights yet (n_averaged > 0)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if self._average_model is not None and self._device is None:  # the average beside the weights
            self._average_model.update_parameters = self._update  # its hooks' conditions stay Lightning's

    @torch.no_grad()
    def _update(self, model: L.LightningModule) -> None:
        average = self._average_model
        if self._pairs is None:
            tensors = [list(m.parameters()) + list(m.buffers()) for m in (average.module, model)]
            floats = [[t for t in side if t.is_floating_point()] for side in tensors]
            integers = [[t for t in side if not t.is_floating_point()] for side in tensors]
            self._pairs = (*floats, *integers)
            self._started = bool(average.n_averaged > 0)  # one read per fit: a resumed run continues its average
        averaged, current, averaged_ints, current_ints = self._pairs
        if self._started:
            torch._foreach_lerp_(averaged, current, 1 - self.decay)
        else:
            torch._foreach_copy_(averaged, current)
            self._started = True
        if averaged_ints:
            torch._foreach_copy_(averaged_ints, current_ints)
        average.n_averaged.add_(1)

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        if trainer.state.fn == "fit":
            super().on_load_checkpoint(trainer, pl_module, checkpoint)


class InterruptCheckpoint(OnExceptionCheckpoint):
    """Saves ``interrupted.ckpt`` when a run is stopped from outside: Ctrl-C, SIGTERM, a signal handler's exit
    (not on errors: a diverged model is nothing to resume)."""

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, (KeyboardInterrupt, SystemExit)):
            super().on_exception(trainer, pl_module, exception)
