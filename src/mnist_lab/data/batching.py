"""Batches by indexing: a dataset of whole tensors and a sampler that yields a batch of indices at a time."""

from __future__ import annotations

import math
from typing import Iterator

import torch
from torch.utils.data import Dataset, Sampler


class TensorBatches(Dataset):
    """Images and labels held as whole tensors; indexed with a batch of indices at once (on their device)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device) -> TensorBatches:
        return TensorBatches(self.images.to(device), self.labels.to(device))

    def __getitem__(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.labels[index]


class IndexBatchSampler(Sampler[torch.Tensor]):
    """Yields whole batches of indices; under DDP each rank gets its own shard.

    Like ``DistributedSampler`` it pads the shards to equal length so every rank runs the
    same number of steps, and reshuffles each epoch through ``set_epoch`` (Lightning calls it).
    The indices live on ``device``, the data's: a CPU index into GPU-resident data would be
    copied to the GPU for every batch, a host sync each time.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        device: torch.device | str = "cpu",
    ) -> None:
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.rank, self.world_size, self.epoch, self.device = rank, world_size, 0, torch.device(device)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _shard(self) -> torch.Tensor:
        if self.shuffle:
            generator = torch.Generator(self.device).manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.n, generator=generator, device=self.device)
        else:
            order = torch.arange(self.n, device=self.device)
        if self.world_size > 1:
            per_rank = math.ceil(self.n / self.world_size)
            order = torch.cat([order, order[: per_rank * self.world_size - self.n]])
            order = order[self.rank :: self.world_size]
        return order

    def __iter__(self) -> Iterator[torch.Tensor]:
        yield from self._shard().split(self.batch_size)

    def __len__(self) -> int:
        return math.ceil(math.ceil(self.n / self.world_size) / self.batch_size)
