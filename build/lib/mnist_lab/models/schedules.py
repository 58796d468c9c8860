"""Learning-rate schedules that torch does not have."""

from __future__ import annotations

from typing import Sequence

import torch
from torch.optim.lr_scheduler import LambdaLR


def piecewise_lr(optimizer: torch.optim.Optimizer, lrs: Sequence[float]) -> LambdaLR:
    """One learning rate per epoch (the last one repeats): the tutorial's 5e-4, 3e-4, 1e-4."""
    base = optimizer.param_groups[0]["lr"]
    return LambdaLR(optimizer, lambda epoch: lrs[min(epoch, len(lrs) - 1)] / base)
