"""Shuffling that depends only on the seed and the epoch, so a resumed run sees the same order, and that
splits one permutation between DDP ranks, so N processes see what one process would.

A plain ``DataLoader(shuffle=True)`` draws its permutation (and its workers' base seed) from torch's
global generator when an epoch's iterator is made; Lightning makes the first iterator after a resume at
a different moment than the uninterrupted run did, so the order of that epoch, and of the masks drawn
afterwards, would differ. :class:`EpochShuffle` draws the permutation from ``seed + epoch`` (Lightning
calls ``set_epoch`` before each epoch's first batch) and :func:`shuffled_loader_kwargs` gives the loader
a generator of its own, so making an iterator never advances the global one.

Under DDP the sampler is made after the process group exists (Lightning asks for dataloaders then):
rank ``r`` of ``W`` takes positions ``r, r + W, ...`` of the permutation, so step ``i`` of the ranks
together covers the same rows as step ``i`` of one process with a ``W``× larger batch. Being a
``DistributedSampler``, Lightning leaves it in place instead of wrapping it.
"""

from __future__ import annotations

import os
from typing import Any, Sized

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes (``(0, 1)`` outside a distributed run)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class EpochShuffle(DistributedSampler):
    """A random permutation of the rows per epoch, from ``seed + epoch``; this rank's share of it.

    Args:
        data: the dataset (only its length is used).
        seed: base seed; default ``seed_everything``'s (``PL_GLOBAL_SEED``, the same on every rank), else
            ``torch.initial_seed()``.

    Rows are padded by repetition to a multiple of the world size (as ``DistributedSampler`` does);
    with one process nothing is padded.
    """

    def __init__(self, data: Sized, seed: int | None = None, generator: torch.Generator | None = None) -> None:
        if seed is None:
            seed = int(os.environ.get("PL_GLOBAL_SEED", torch.initial_seed()))
        rank, world = rank_and_world()
        super().__init__(data, num_replicas=world, rank=rank, shuffle=True, seed=seed)
        self.generator = generator
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Choose epoch ``epoch``'s permutation and reseed the loader's generator for it.

        The loader draws its workers' base seed from that generator when the epoch's iterator is made, so
        worker-side randomness (augmentations) depends on the epoch alone, not on how many iterators this
        process made before: a run resumed at epoch ``e`` gives its workers the uninterrupted run's seeds.
        """
        super().set_epoch(epoch)
        if self.generator is not None:
            # distinct from the permutation's stream (seed + epoch) and from other ranks' (up to 1024 ranks)
            self.generator.manual_seed(((self.seed + epoch) * 1024 + self.rank + 1) % 2**63)


def shuffled_loader_kwargs(data: Sized, seed: int | None = None) -> dict[str, Any]:
    """``sampler`` and ``generator`` for a shuffled ``DataLoader`` over ``data`` (in place of ``shuffle=True``)."""
    # the loader's own generator seeds worker processes (reseeded per epoch); the global one is left alone
    generator = torch.Generator()
    return {"sampler": EpochShuffle(data, seed, generator), "generator": generator}
