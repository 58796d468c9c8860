"""``logger=wandb``: online only where W&B can be reached with a login, else offline, never a login prompt."""

from __future__ import annotations

import netrc
import os
import socket
from pathlib import Path
from typing import Optional

import lightning as L
from lightning.pytorch.utilities import rank_zero_only

from mnist_lab.logs import get_logger

log = get_logger(__name__)
HOST = "api.wandb.ai"


def _logged_in() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:  # where `wandb login` keeps the key
        return netrc.netrc(os.environ.get("NETRC", Path.home() / ".netrc")).authenticators(HOST) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def _reachable(timeout_s: float = 2.0) -> bool:
    try:
        socket.create_connection((HOST, 443), timeout=timeout_s).close()
        return True
    except OSError:
        return False


def offline() -> bool:
    """WANDB_MODE when it is set; else offline unless logged in and W&B answers."""
    mode = os.environ.get("WANDB_MODE")
    if mode:
        return mode in ("offline", "dryrun")
    return not (_logged_in() and _reachable())


@rank_zero_only  # the other ranks of a DDP run hold no W&B run
def finish_wandb(trainer: Optional[L.Trainer], failed: bool = False) -> None:
    """End a run's W&B runs (the next run of a sweep would otherwise log into them), naming the upload command."""
    from lightning.pytorch.loggers import WandbLogger

    for logger in trainer.loggers if trainer is not None else []:
        if isinstance(logger, WandbLogger):
            run = logger.experiment
            sync_dir = run.settings.sync_dir
            run.finish(exit_code=1 if failed else 0)
            if run.offline:
                log.info(f"W&B run saved offline; upload it with: wandb sync {sync_dir}")
