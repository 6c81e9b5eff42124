"""Epoch-seeded shuffling and generator state in checkpoints: what makes a resumed run exact."""

from __future__ import annotations

import random

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from datamodules.common.epoch_shuffle import EpochShuffle, shuffled_loader_kwargs
from vtrep.callbacks.rng_state import RNGStateCheckpoint


def test_the_order_depends_on_seed_and_epoch_only():
    data = list(range(50))
    sampler = EpochShuffle(data, seed=3)
    sampler.set_epoch(2)
    torch.manual_seed(123)
    first = list(sampler)
    torch.manual_seed(999)
    torch.rand(10)  # the global generator moved on: the order does not care
    assert list(sampler) == first and sorted(first) == data
    sampler.set_epoch(3)
    assert list(sampler) != first
    assert list(EpochShuffle(data, seed=4)) != list(EpochShuffle(data, seed=3))


def test_making_a_loader_iterator_leaves_the_global_generator_alone():
    data = TensorDataset(torch.arange(20.0))
    loader = DataLoader(data, batch_size=4, **shuffled_loader_kwargs(data, seed=0))
    before = torch.get_rng_state()
    batches = [b[0] for b in loader]
    assert torch.equal(torch.get_rng_state(), before)
    assert sorted(torch.cat(batches).tolist()) == list(range(20))


def test_generator_states_survive_a_checkpoint_round_trip(tmp_path):
    callback = RNGStateCheckpoint()
    torch.manual_seed(5), np.random.seed(5), random.seed(5)
    saved = callback.state_dict()
    torch.save(saved, tmp_path / "state.pt")
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(77), np.random.seed(77), random.seed(77)
    restored = RNGStateCheckpoint()
    restored.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))  # as Lightning loads
    restored.on_train_epoch_start(None, None)
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1]) and random.random() == expected[2]
    assert restored.pending is None  # applied once, at the first epoch after the resume


class WorkerDraws(torch.utils.data.Dataset):
    """Each item is a draw from the worker's own generator, as an augmentation in a worker would be."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.rand(1)


def epoch_draws(loader: DataLoader, epoch: int) -> torch.Tensor:
    loader.sampler.set_epoch(epoch)  # what Lightning does before each epoch
    return torch.cat(list(loader))


def test_worker_randomness_depends_on_the_epoch_not_on_earlier_iterators():
    data = WorkerDraws()
    through = DataLoader(data, batch_size=2, num_workers=1, **shuffled_loader_kwargs(data, seed=5))
    uninterrupted = [epoch_draws(through, e) for e in range(3)]
    resumed = DataLoader(data, batch_size=2, num_workers=1, **shuffled_loader_kwargs(data, seed=5))
    assert torch.equal(epoch_draws(resumed, 2), uninterrupted[2])  # fresh loader, straight to epoch 2
    assert not torch.equal(uninterrupted[1], uninterrupted[2])  # a new worker seed each epoch
