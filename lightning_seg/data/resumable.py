"""Training samplers whose epochs can be resumed mid-way, with the same samples and the same augmentations.

An epoch's draws depend only on ``(seed, epoch)``, and each draw comes with its own augmentation seed
(``(index, sample_seed)`` keys, which :class:`~lightning_seg.data.base.SegmentationDataset` accepts), so
what a sample looks like depends neither on the data worker that loads it nor on how many workers there
are. :meth:`ResumableSampler.skip_next` starts the next epoch past the samples already trained on: a run
resumed from a mid-epoch checkpoint (:class:`~lightning_seg.resume.ExactResume` calls it) trains on
exactly the samples, in the order and with the augmentations, that the uninterrupted run did.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler

#: The largest per-sample augmentation seed (albumentations seeds NumPy generators: below 2**32).
SEED_BOUND = 2**31


def training_seed() -> int:
    """The seed of the training samplers: ``seed_everything``'s (``PL_GLOBAL_SEED``, set by the CLI).

    Without one, a seed drawn from torch's global generator, or 0 in a process group (every process must
    draw the same sequence, so that each keeps its own share of it).
    """
    if (seed := os.environ.get("PL_GLOBAL_SEED")) is not None:
        return int(seed)
    if dist.is_available() and dist.is_initialized():
        return 0
    return int(torch.randint(SEED_BOUND, ()))


class ResumableSampler(DistributedSampler):
    """A shuffling training sampler: per epoch, a permutation of the dataset drawn from ``(seed, epoch)``.

    A :class:`~torch.utils.data.DistributedSampler` (so Lightning keeps it under DDP): every process draws
    the same sequence and keeps every ``num_replicas``-th key from its rank on; without ``drop_last`` the
    sequence is padded with its first keys to a multiple of ``num_replicas``, as torch's sampler does.
    Lightning sets the epoch through :meth:`set_epoch` at each epoch start. Subclasses change what is drawn
    by overriding :meth:`draw`.

    Args:
        size: number of samples in the dataset.
        seed: seed shared by every process.
        num_replicas: number of processes; default: the process group's size (1 without one).
        rank: this process's rank; default: from the process group (0 without one).
    """

    def __init__(self, size: int, seed: int = 0, num_replicas: int | None = None, rank: int | None = None) -> None:
        distributed = dist.is_available() and dist.is_initialized()
        num_replicas = num_replicas if num_replicas is not None else (dist.get_world_size() if distributed else 1)
        rank = rank if rank is not None else (dist.get_rank() if distributed else 0)
        super().__init__(range(size), num_replicas=num_replicas, rank=rank, shuffle=False, seed=seed)
        self._skip = 0

    def draw(self, generator: torch.Generator) -> np.ndarray:
        """The epoch's sample indices for all processes together: ``total_size`` of them."""
        order = torch.randperm(len(self.dataset), generator=generator).numpy()
        return np.resize(order, self.total_size)  # pads by repeating from the start

    def skip_next(self, count: int) -> None:
        """Start the next epoch's iteration after this process's first ``count`` keys."""
        if count < 0:
            raise ValueError(f"cannot skip a negative number of samples ({count})")
        self._skip = count

    def __iter__(self) -> Iterator[tuple[int, int]]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        indices = self.draw(generator)
        seeds = torch.randint(SEED_BOUND, (self.total_size,), generator=generator).numpy()
        mine = slice(self.rank, self.total_size, self.num_replicas)
        keys = list(zip(indices[mine].tolist(), seeds[mine].tolist(), strict=True))
        skip, self._skip = self._skip, 0
        return iter(keys[skip:])
