"""Shuffling that depends only on the seed and the epoch, so a resumed run sees the same order.

A plain ``DataLoader(shuffle=True)`` draws its permutation (and its workers' base seed) from torch's
global generator when an epoch's iterator is made; Lightning makes the first iterator after a resume at
a different moment than the uninterrupted run did, so the order of that epoch, and of the masks drawn
afterwards, would differ. :class:`EpochShuffle` draws the permutation from ``seed + epoch`` (Lightning
calls :meth:`set_epoch` before each epoch's first batch; so does DDP's ``DistributedSampler``, which
replaces it under DDP), and :func:`shuffled_loader_kwargs` gives the loader a generator of its own so
making an iterator never advances the global one.
"""

from __future__ import annotations

from typing import Any, Iterator, Sized

import torch
from torch.utils.data import Sampler


class EpochShuffle(Sampler[int]):
    """A random permutation of ``range(len(data))`` per epoch, from ``seed + epoch``.

    Args:
        data: the dataset (only its length is used).
        seed: base seed; default ``torch.initial_seed()`` at construction (``seed_everything``'s seed).
    """

    def __init__(self, data: Sized, seed: int | None = None) -> None:
        self.data, self.seed, self.epoch = data, torch.initial_seed() if seed is None else seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(len(self.data), generator=generator).tolist())


def shuffled_loader_kwargs(data: Sized, seed: int | None = None) -> dict[str, Any]:
    """``sampler`` and ``generator`` for a shuffled ``DataLoader`` over ``data`` (in place of ``shuffle=True``)."""
    sampler = EpochShuffle(data, seed)
    # the loader's own generator seeds worker processes; the global generator is left alone
    return {"sampler": sampler, "generator": torch.Generator().manual_seed(sampler.seed)}
