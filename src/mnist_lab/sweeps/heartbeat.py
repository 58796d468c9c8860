"""A running trial's proof that it is alive, which sweep processes on any machine can read: the time of its
last heartbeat in the trial's user attributes. Optuna's own heartbeat serves RDB storages in ``optimize()``
only; the journal has none, and the sweeper asks and tells."""

from __future__ import annotations

import threading
import time
from typing import Callable, Iterable, Optional

import lightning as L
import optuna
from hydra.core.hydra_config import HydraConfig

from mnist_lab.errors import ConfigError
from mnist_lab.logs import get_logger
from mnist_lab.sweeps.study import HEARTBEAT_KEY, heartbeat_times, open_study, running_trial

log = get_logger(__name__)


def stamp(study: optuna.Study, number: int) -> None:
    """Record that trial ``number`` is alive now; a trial that has ended meanwhile is left as it is."""
    try:
        running_trial(study, number).set_user_attr(HEARTBEAT_KEY, time.time())
    except Exception as err:  # noqa: BLE001 - a heartbeat never stops a run: the trial ended, or the storage hiccupped
        log.debug(f"No heartbeat for trial {number}: {err}")


class Beat:
    """A daemon thread that stamps the trials ``numbers()`` names every ``every_s`` seconds, while in a ``with``."""

    def __init__(self, study: Callable[[], optuna.Study], numbers: Callable[[], Iterable[int]], every_s: float) -> None:
        self.study, self.numbers, self.every_s = study, numbers, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="trial-heartbeat", daemon=True)

    def _run(self) -> None:
        study = self.study()  # its own storage handle: the main thread's is not shared across threads
        while not self._stop.wait(self.every_s):
            for number in list(self.numbers()):
                stamp(study, number)

    def __enter__(self) -> "Beat":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class TrialHeartbeat(L.Callback):
    """A run of ``sweep=optuna`` stamps its trial's heartbeat at every epoch end and, from a thread, at least
    every ``hydra.sweeper.heartbeat_s`` seconds: the training step itself does nothing."""

    def __init__(self, trial: Optional[int]) -> None:
        if trial is None or not HydraConfig.initialized():
            raise ConfigError("trial=None is not allowed: sweep=optuna gives each of its runs a trial number")
        self.trial, self.sweeper = trial, HydraConfig.get().sweeper
        self.study: Optional[optuna.Study] = None
        self.beat: Optional[Beat] = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            self.study = open_study(self.sweeper)
            stamp(self.study, self.trial)
            every_s, _ = heartbeat_times(self.sweeper)
            self.beat = Beat(lambda: open_study(self.sweeper), lambda: [self.trial], every_s)
            self.beat.__enter__()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.study is not None:
            stamp(self.study, self.trial)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.beat is not None:
            self.beat.__exit__()
            self.beat = None
