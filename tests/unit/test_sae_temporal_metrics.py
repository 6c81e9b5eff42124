"""Temporal concept metrics (vtrep.sae.metrics.temporal, sparse_probing) on hand-built codes with known answers."""

from __future__ import annotations

import math

import torch

from vtrep.sae.metrics.sparse_probing import ItemMeans, sparse_probing, stratified_split, top_by_mean_difference
from vtrep.sae.metrics.temporal import (
    CoherenceAccumulator,
    PositionAccumulator,
    adjacent_pairs,
    freeze_motion,
    position_eta2,
    response_scores,
    shuffle_order,
    temporal_classes,
    temporal_coherence,
)


def grid(items=3, steps=4, h=2, w=2):
    """Metadata of every token ``(item, t, h, w)`` in a shuffled order, ``(n, 4)``."""
    cells = torch.cartesian_prod(torch.arange(items), torch.arange(steps), torch.arange(h), torch.arange(w))
    return cells[torch.randperm(len(cells), generator=torch.Generator().manual_seed(0))]


def test_adjacent_pairs_join_the_same_item_and_site_at_consecutive_positions():
    meta = grid()
    first, second = adjacent_pairs(meta[:, 0], meta[:, 1], meta[:, 2:])
    assert len(first) == 3 * 3 * 4  # items x (steps - 1) x sites
    assert (meta[first, 0] == meta[second, 0]).all() and (meta[first, 2:] == meta[second, 2:]).all()
    assert (meta[second, 1] == meta[first, 1] + 1).all()


def test_coherence_is_one_for_a_constant_in_time_latent_and_low_for_flicker():
    meta = grid(items=6)
    g = torch.Generator().manual_seed(1)
    per_site = torch.rand(6, 2, 2, generator=g)  # varies over items and sites, never in time
    constant = per_site[meta[:, 0], meta[:, 2], meta[:, 3]]
    flicker = torch.rand(len(meta), generator=g)  # independent at every token
    alternating = (meta[:, 1] % 2).float()  # on, off, on, off: anticorrelated neighbours
    codes = torch.stack([constant, flicker, alternating, torch.zeros(len(meta))], dim=1)
    rho = temporal_coherence(codes, meta[:, 0], meta[:, 1], meta[:, 2:])
    assert math.isclose(rho[0].item(), 1.0, abs_tol=1e-5)
    assert abs(rho[1].item()) < 0.4
    assert math.isclose(rho[2].item(), -1.0, abs_tol=1e-5)
    assert math.isnan(rho[3].item())  # dead: undefined


def test_coherence_streamed_over_item_chunks_equals_one_pass():
    meta = grid(items=5)
    codes = torch.rand(len(meta), 3, generator=torch.Generator().manual_seed(2))
    acc = CoherenceAccumulator(3)
    for items in ([0, 1], [2], [3, 4]):
        rows = torch.isin(meta[:, 0], torch.tensor(items))
        acc.update(codes[rows], meta[rows, 0], meta[rows, 1], meta[rows, 2:])
    torch.testing.assert_close(acc.result(), temporal_coherence(codes, meta[:, 0], meta[:, 1], meta[:, 2:]))


def test_eta2_is_one_for_a_position_only_latent_and_zero_for_one_independent_of_position():
    meta = grid(items=4)
    cells = meta[:, 1:]
    by_position = (cells[:, 0] * 4 + cells[:, 1] * 2 + cells[:, 2]).float()  # a function of (t, h, w) alone
    by_item = meta[:, 0].float()  # same distribution at every position
    codes = torch.stack([by_position, by_item, torch.ones(len(meta))], dim=1)
    eta = position_eta2(codes, cells)
    assert math.isclose(eta[0].item(), 1.0, abs_tol=1e-6)
    assert eta[1].item() < 1e-6
    assert math.isnan(eta[2].item())
    acc = PositionAccumulator(3)  # streamed in two chunks
    acc.update(codes[:20], cells[:20]), acc.update(codes[20:], cells[20:])
    torch.testing.assert_close(acc.result(), eta, equal_nan=True)


def test_eta2_of_a_half_explained_latent():
    cells = torch.tensor([[0], [0], [1], [1]])
    codes = torch.tensor([[0.0], [2.0], [2.0], [4.0]])  # group means 1, 3; total var 2, between 1
    assert math.isclose(position_eta2(codes, cells).item(), 0.5, abs_tol=1e-6)


def test_freeze_and_shuffle_keep_the_frames_and_remove_motion_or_order():
    x = torch.arange(2 * 3 * 6 * 2 * 2, dtype=torch.float32).reshape(2, 3, 6, 2, 2)
    frozen = freeze_motion(x)
    assert (frozen == x[:, :, 3:4]).all()
    shuffled = shuffle_order(x, torch.Generator().manual_seed(0))
    assert not torch.equal(shuffled, x)
    assert torch.equal(shuffled.sort(dim=2).values, x)  # the same frames, in another order
    series = torch.arange(7.0)[None, None]  # blocks of 3 from the end: [0] stays, [1-3] and [4-6] swap
    assert shuffle_order(series, torch.Generator().manual_seed(0), block=3).flatten().tolist() == [0, 4, 5, 6, 1, 2, 3]


def test_response_scores_and_classes():
    original = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0])
    frozen = torch.tensor([0.0, 0.95, 3.0, 0.7, 0.0])
    shuffled = torch.tensor([1.0, 1.0, 1.0, 0.2, 0.0])
    scores = response_scores(original, frozen, shuffled)
    torch.testing.assert_close(scores["dynamic_score"][:4], torch.tensor([1.0, 0.05, -2.0, 0.3]))
    assert temporal_classes(scores["dynamic_score"]) == ["dynamic", "static", "still", "mixed", "silent"]
    assert scores["order_score"][3].item() > 0.5 and math.isnan(scores["order_score"][4].item())


def test_item_means_pool_tokens_per_item():
    acc = ItemMeans(2)
    acc.update(torch.tensor([[1.0, 0.0], [3.0, 2.0]]), torch.tensor([0, 0]), torch.tensor([1, 1]))
    acc.update(torch.tensor([[5.0, 5.0]]), torch.tensor([2]), torch.tensor([0]))
    items, means, labels = acc.result()
    assert items.tolist() == [0, 2] and means.tolist() == [[2.0, 1.0], [5.0, 5.0]] and labels.tolist() == [1, 0]


def test_sparse_probing_finds_the_one_informative_latent():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(120) % 3
    x = torch.rand(120, 20, generator=g)
    x[:, 7] += 3.0 * (labels == 1)  # latent 7 flags class 1
    x[:, 3] += 3.0 * (labels == 2)  # latent 3 flags class 2
    assert set(top_by_mean_difference(x, labels == 1, 1).tolist()) == {7}
    train, test = stratified_split(labels, 0.3, seed=0)
    assert len(set(train.tolist()) & set(test.tolist())) == 0 and len(train) + len(test) == 120
    assert sorted(torch.bincount(labels[test]).tolist()) == [12, 12, 12]
    scores = sparse_probing(x[train], labels[train], x[test], labels[test], dense=True)
    assert set(scores) == {"k1", "k2", "k5", "dense"}
    # classes 1 and 2 are read from one latent each; class 0 (neither) from the pair
    assert scores["k2"] > 0.95 and scores["k1"] > 0.8
