"""The project's log: what a run tells the terminal, also written to Hydra's ``<job>.log`` in the run folder."""

from __future__ import annotations

import logging
from typing import Any

from lightning.pytorch.utilities import rank_zero_only


class RankZeroLogger(logging.LoggerAdapter):
    """A logger that only rank 0 writes to: under DDP each message appears once, not once per process."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if rank_zero_only.rank == 0:
            super().log(level, msg, *args, **kwargs)


def get_logger(name: str) -> RankZeroLogger:
    return RankZeroLogger(logging.getLogger(name), {})
