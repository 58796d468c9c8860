"""One LightningModule for every network: cross-entropy, accuracy, optimizer and schedule from config."""

from __future__ import annotations

import inspect
import math
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import lightning as L
import torch
import torch.nn.functional as F
from hydra.utils import get_class
from omegaconf import DictConfig, ListConfig, OmegaConf
from pydantic import ConfigDict, Field, NonNegativeFloat, PositiveFloat, PositiveInt
from torchmetrics import MaxMetric
from torchmetrics.classification import MulticlassAccuracy
from typing_extensions import Required, TypedDict

from mnist_lab.building import build
from mnist_lab.data import mnist
from mnist_lab.data.contract import READINGS, take_normalize, unit_images
from mnist_lab.errors import CheckpointError, ConfigError, DataError
from mnist_lab.migration import migrate
from mnist_lab.validation import signature_schema, validate

CONFIG_KEY = "run_config"  # a checkpoint's key for the composed config of the run that saved it
Share = Annotated[float, Field(ge=0, lt=1)]


class Optimizer(TypedDict, total=False):
    """Any torch optimizer's ``_partial_`` config. Torch checks these only when it builds the optimizer, after
    the data is read, and takes lr=0 (a run that learns nothing)."""

    __pydantic_config__ = ConfigDict(strict=True, extra="allow")  # type: ignore[misc]

    lr: Required[PositiveFloat]
    weight_decay: NonNegativeFloat
    momentum: Share


class Scheduler(TypedDict, total=False):
    """A ``_partial_`` torch schedule's config; OneCycle's bounds (torch checks them after the data is read)."""

    __pydantic_config__ = ConfigDict(strict=True, extra="allow")  # type: ignore[misc]

    max_lr: PositiveFloat
    pct_start: Annotated[float, Field(gt=0, lt=1)]


# What a network may take from the data, torchvision's way (num_classes), when its config does not set it.
DATA_ARGUMENTS = ("num_classes", "image_size", "in_channels")


def _data_arguments(net: dict, given: dict[str, int]) -> dict[str, int]:
    """The ``given`` DATA_ARGUMENTS that the network class takes and its config leaves out, refused in one line
    where they break its bounds (the deep CNN's image_size)."""
    try:
        parameters = inspect.signature(get_class(net["_target_"])).parameters
    except Exception:  # noqa: BLE001 - an unknown class is named by build() in its own words
        return {}
    filled = {key: given[key] for key in DATA_ARGUMENTS if key in parameters and key not in net}
    try:
        validate(signature_schema(net["_target_"]) or dict, filled, "model.net")  # dict: no hints, no bounds
    except ConfigError as err:
        raise ConfigError(f"{str(err).rstrip('.')} (it is the data's: choose a model that takes it).") from None
    return filled


def _check_outputs(net: torch.nn.Module, example: torch.Tensor, classes: int) -> None:
    """Refuse a network whose output is not one logit per class (before any data is read)."""
    training = net.training
    with torch.no_grad():
        shape = tuple(net.eval()(example).shape)
    net.train(training)
    if shape != (len(example), classes):
        raise ConfigError(
            f"model.net gives outputs of shape {shape[1:]} for each image, but the data has {classes} classes: "
            "its last layer needs one output per class (a num_classes argument is filled in from the data)."
        )


def _plain(value: Any) -> Any:
    # Checkpoints must load with weights_only=True, which refuses OmegaConf containers.
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value


class EpochSums(torch.nn.Module):
    """The epoch's training-loss sum and correct count, kept where the loss is: two in-place ops a step,
    no record of their own for a non-finite loss (it makes the sum non-finite) and no host read but in
    ``check``, on the steps that log."""

    def __init__(self) -> None:
        super().__init__()
        # Not in checkpoints: an epoch restarts its sums, as torchmetrics' epoch metrics did.
        self.register_buffer("loss", torch.zeros(()), persistent=False)
        self.register_buffer("correct", torch.zeros((), dtype=torch.long), persistent=False)
        self.steps = self.images = 0  # counted on the host

    @torch.no_grad()
    def update(self, loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        self.loss.add_(loss)
        self.correct.add_((logits.argmax(-1) == labels).sum())
        self.steps, self.images = self.steps + 1, self.images + len(labels)

    def reset(self) -> None:
        self.loss.zero_()
        self.correct.zero_()
        self.steps = self.images = 0

    def means(self) -> dict[str, torch.Tensor]:
        """The epoch so far: mean loss per step and accuracy, as tensors (logging reads them)."""
        return {
            "train_loss_epoch": self.loss / max(self.steps, 1),
            "train_acc_epoch": self.correct / max(self.images, 1),
        }

    def check(self, step: int, epoch: int, lr: float) -> None:
        """Stop the run if a loss of this epoch was not finite (one host read)."""
        total = float(self.loss)
        if not math.isfinite(total):
            raise FloatingPointError(
                f"train_loss became {total} by step {step} (epoch {epoch}); "
                f"the learning rate ({lr:g}) is probably too high."
            )


class ImageClassifier(L.LightningModule):
    """Wraps a network built from ``net`` (a ``_target_`` dict) so checkpoints rebuild it alone.

    What reading a new image needs travels in the checkpoint with it: the class names, the image size, and
    the mean and std the inputs are normalised with. The data gives them (``training.run.prepare``) where the
    model's config does not.
    """

    def __init__(
        self,
        net: dict,
        optimizer: Optimizer,
        scheduler: Optional[Scheduler] = None,
        scheduler_interval: Literal["step", "epoch"] = "step",
        label_smoothing: Share = 0.0,
        classes: Optional[list[str]] = None,  # by label; None (checkpoints from before): the digits 0-9
        image_size: PositiveInt = mnist.SIDE,
        channels: PositiveInt = 1,
        # Part of the model, so a checkpoint carries its preprocessing; train.py passes the data's
        # (data.contract.data_facts): how a picture is read, and the statistics its pixels are normalised with.
        mean: float | list[float] = mnist.MEAN,  # a list: one a channel (a transforms.Normalize of colour pictures)
        std: PositiveFloat | list[PositiveFloat] = mnist.STD,
        reading: Literal[READINGS] = "digits",  # type: ignore[valid-type]
        channels_last: bool = False,
        compile: bool | Literal["default", "reduce-overhead", "max-autotune"] = False,
    ) -> None:
        super().__init__()
        net, optimizer, scheduler, mean, std = map(_plain, (net, optimizer, scheduler, mean, std))
        classes = list(classes) if classes else mnist.DIGITS
        self.save_hyperparameters(logger=False)
        self.hparams.classes = classes
        # A refused argument raises its UserError, also from a checkpoint.
        given = {"num_classes": len(classes), "image_size": image_size, "in_channels": channels}
        self.net = build(net, where="model.net", **_data_arguments(net, given))
        for name, value in (("pixel_mean", mean), ("pixel_std", std)):  # forward()'s, on its device; hparams keep them
            self.register_buffer(name, torch.tensor(value, dtype=torch.float).view(-1, 1, 1), persistent=False)
        # For the model graph and summary; two images because batch norm refuses one in training mode.
        self.example_input_array = torch.zeros(2, channels, image_size, image_size)
        _check_outputs(self.net, self.example_input_array, len(classes))
        if channels_last:  # NHWC: oneDNN's and cuDNN's fast convolution layout (~10 % faster CNN epochs on CPU)
            self.net.to(memory_format=torch.channels_last)
        # Plain sums, not torchmetrics: its updates were a third of a small model's ops per step.
        self.train_sums = EpochSums()
        self.val_acc, self.test_acc = (MulticlassAccuracy(len(classes), average="micro") for _ in range(2))
        self.val_acc_best = MaxMetric()
        self.val_acc_best.persistent(True)  # a resumed run remembers its best epoch
        # The composed config of the run that trains it, saved beside the weights (set by training.run.train).
        self.run_config: Optional[dict] = None

    @property
    def classes(self) -> list[str]:
        return self.hparams.classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for images ``x`` (B, channels, image_size, image_size) in [0, 1], or any form the data contract
        allows (``data.contract.unit_images``)."""
        x = (unit_images(x) - self.pixel_mean) / self.pixel_std
        if self.hparams.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.hparams.label_smoothing)
        self.train_sums.update(loss, logits, y)
        # No tensor is read back to the host except on the steps Lightning writes logs and at the
        # epoch's end: on a GPU each read waits for all queued work. Each self.log costs ~1 ms on
        # CPU too. Callbacks' on_train_epoch_end runs before the module's, too late for
        # EpochHistory, hence the epoch means on the last batch.
        log_step = (self.global_step + 1) % self.trainer.log_every_n_steps == 0
        last_batch = batch_idx + 1 == self.trainer.num_training_batches
        if log_step or last_batch or self.global_step + 1 == self.trainer.max_steps:
            self._check_finite()
        if log_step:
            batch_acc = (logits.argmax(-1) == y).float().mean()
            # Not prog_bar: Lightning would turn them into numbers after every step; ProgressBar shows them.
            self.log_dict({"train_loss_step": loss.detach(), "train_acc_step": batch_acc}, on_step=True, on_epoch=False)
        if last_batch:
            self.log_dict(self.train_sums.means(), on_step=False, on_epoch=True, prog_bar=True, sync_dist=True)
        return loss

    def _check_finite(self) -> None:
        lr = self.trainer.optimizers[0].param_groups[0]["lr"] if self.trainer.optimizers else float("nan")
        self.train_sums.check(self.global_step, self.current_epoch, lr)

    def setup(self, stage: str) -> None:
        # The data set up anew for this stage (a DataModule may make its transforms in its setup): a Normalize among
        # them stays the model's (data.contract.take_normalize, which read it before the model was built).
        if self.trainer is not None and self.trainer.datamodule is not None:
            take_normalize(self.trainer.datamodule)

    def on_fit_start(self) -> None:
        # Compiled for training only: eval.py, predict.py and serve.py load the network and answer at once.
        if self.hparams.compile:
            self.net.compile(mode=None if self.hparams.compile is True else self.hparams.compile)

    def on_validation_start(self) -> None:
        # Mid-epoch validation (val_check_interval) must not checkpoint diverged weights.
        if self.trainer.training or self.train_sums.steps:
            self._check_finite()

    def on_train_epoch_start(self) -> None:
        self.train_sums.reset()

    def _evaluate(
        self, batch: tuple[torch.Tensor, torch.Tensor], stage: str, accuracy: MulticlassAccuracy
    ) -> torch.Tensor:
        x, y = batch
        size = (x.shape[1] if x.dim() == 4 else 1, *x.shape[-2:])
        made_for = (self.hparams.channels, self.hparams.image_size, self.hparams.image_size)
        if size != made_for:  # a validation or test set the DataModule did not make as its training images
            raise DataError(
                f"the {stage} images are {'x'.join(map(str, size))} (channels x height x width), the train images "
                f"{'x'.join(map(str, made_for))}: the model takes one size; make them one (transforms.Resize)."
            )
        logits = self(x)
        accuracy(logits, y)
        self.log(f"{stage}_loss", F.cross_entropy(logits, y), prog_bar=True, sync_dist=True)
        self.log(f"{stage}_acc", accuracy, prog_bar=True)
        return logits

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val", self.val_acc)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:  # a few batches before training: not an epoch's accuracy
            return
        self.val_acc_best(self.val_acc.compute())
        self.log("val_acc_best", self.val_acc_best.compute(), prog_bar=True)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._evaluate(batch, "test", self.test_acc)  # logits, for the TestFigures callback

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CONFIG_KEY] = self.run_config
        # With the RNG state a resumed run draws the same dropout masks and augmentations.
        checkpoint["rng_state"] = torch.get_rng_state()
        if torch.cuda.is_available():
            checkpoint["cuda_rng_state"] = torch.cuda.get_rng_state_all()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.run_config is None:  # load_from_checkpoint; a run continuing from it keeps its own config
            self.run_config = checkpoint.get(CONFIG_KEY)
        if "rng_state" in checkpoint:
            torch.set_rng_state(checkpoint["rng_state"].cpu())
        if "cuda_rng_state" in checkpoint and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in checkpoint["cuda_rng_state"]])

    def configure_optimizers(self) -> dict:
        optimizer = build(self.hparams.optimizer)(params=self.parameters())
        if not self.hparams.scheduler:
            return {"optimizer": optimizer}
        make_scheduler = build(self.hparams.scheduler)
        scheduler = make_scheduler(optimizer, **self._run_length(make_scheduler))
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": self.hparams.scheduler_interval},
        }

    def _run_length(self, make_scheduler: Any) -> dict[str, Any]:
        """``total_steps`` for a schedule that spans the run (OneCycleLR), which only the trainer knows. A warm-up
        of one step or less is left out: torch would divide by its length (ZeroDivisionError) in a run that short."""
        if "total_steps" not in inspect.signature(make_scheduler).parameters:
            return {}
        by_step = self.hparams.scheduler_interval == "step"
        steps = max(1, int(self.trainer.estimated_stepping_batches if by_step else self.trainer.max_epochs))
        warmup = make_scheduler.keywords.get("pct_start", 0.3)  # OneCycleLR's default
        return {"total_steps": steps} | ({"pct_start": 0.0} if 0 < warmup * steps <= 1 else {})


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A checkpoint of this project, loaded with ``weights_only=True``: nothing in the file is executed."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"ckpt_path={path}: no such file; checkpoints are in outputs/runs/<run>/checkpoints/.")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - truncated zip, pickle refused, not a torch file...
        reason = str(err).strip().splitlines()[0] if str(err).strip() else ""
        if not reason or reason.isdigit():  # torch's KeyError for a file that is neither zip nor pickle says "105"
            reason = f"it is not a file torch.save wrote ({type(err).__name__})"
        raise CheckpointError(f"{path}: cannot be read as a safe (weights-only) checkpoint: {reason}") from err
    hparams = ckpt.get("hyper_parameters", {}) if isinstance(ckpt, dict) else {}
    if "net" not in hparams or "state_dict" not in ckpt:
        raise CheckpointError(
            f"{path}: not a checkpoint of this project (it has no network config); train one with train.py."
        )
    ckpt["hyper_parameters"], ckpt[CONFIG_KEY] = migrate(hparams), migrate(ckpt.get(CONFIG_KEY))
    return ckpt


def load_classifier(path: str | Path, map_location: str | torch.device = "cpu") -> ImageClassifier:
    """Rebuild a trained classifier from its checkpoint alone."""
    ckpt = read_checkpoint(path, map_location)
    hparams = ckpt["hyper_parameters"]
    # How pictures were read before checkpoints said it themselves: as their run's data said.
    hparams.setdefault("reading", ((ckpt.get(CONFIG_KEY) or {}).get("data") or {}).get("reading", "digits"))
    model = ImageClassifier(**hparams)
    model.load_state_dict(ckpt["state_dict"])
    model.run_config = ckpt.get(CONFIG_KEY)  # None in checkpoints saved before they carried it
    return model.eval()
