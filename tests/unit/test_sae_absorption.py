"""The planted parent/child dictionary (child ⇒ parent) and the absorption / splitting metrics on hand-built SAEs."""

from __future__ import annotations

import pytest
import torch

from datamodules.features.planted_hierarchy import PlantedHierarchyDataModule, parent_map, planted_hierarchy
from vtrep.sae.metrics import absorption_metrics

P, C = 4, 3  # parents, children per parent


def test_parent_map_groups_children_after_the_parents():
    assert parent_map(2, 3).tolist() == [-1, -1, 0, 0, 0, 1, 1, 1]


def test_a_child_is_never_active_without_its_parent_and_frequencies_follow_the_settings():
    data = planted_hierarchy(20_000, d=16, num_parents=P, children_per_parent=C, active_parents=2, child_prob=0.6,
                             seed=3)
    active = data.codes > 0
    children = (~data.is_parent).nonzero().flatten()
    assert torch.all(active[:, children] <= active[:, data.parent_of[children]])  # child ⇒ parent, every row
    assert torch.all(active[:, :P].sum(1) == 2)  # exactly active_parents parents per row
    per_parent = torch.stack([active[:, P + p * C:P + (p + 1) * C].sum(1) for p in range(P)], 1)
    assert per_parent.max() <= 1  # at most one child per active parent
    rate = per_parent.sum() / active[:, :P].sum()
    assert float(rate) == pytest.approx(0.6, abs=0.02)
    assert float(active[:, :P].double().mean()) == pytest.approx(2 / P, abs=1e-6)  # uniform parents (zipf 0)
    magnitudes = data.codes[active]
    assert magnitudes.min() >= 0.5 and magnitudes.max() <= 1.5
    torch.testing.assert_close(data.x, data.codes @ data.atoms)
    torch.testing.assert_close(data.atoms.norm(dim=1), torch.ones(P + P * C))


def test_zipf_makes_early_parents_more_frequent_and_the_datamodule_keeps_the_truth():
    data = planted_hierarchy(5000, d=16, num_parents=P, children_per_parent=C, active_parents=1, zipf=1.0, seed=0)
    counts = (data.codes[:, :P] > 0).sum(0)
    assert torch.all(counts[:-1] > counts[1:])
    module = PlantedHierarchyDataModule(num_samples=800, d=16, num_parents=P, children_per_parent=C, seed=5)
    reference = planted_hierarchy(800, d=16, num_parents=P, children_per_parent=C, seed=5)
    assert module.feature_width == 16 and len(module.val_set) == 100 and len(module.train_set) == 700
    torch.testing.assert_close(module.val_codes, reference.codes[700:])
    torch.testing.assert_close(module.val_set.x, reference.x[700:])
    assert torch.equal(module.parent_of, reference.parent_of) and module.val_set[0]["meta"].item() == 700
    with pytest.raises(ValueError, match="child_prob"):
        planted_hierarchy(10, child_prob=1.5)


def _orthonormal_data(seed=0):
    """Rows of the hierarchy over orthonormal atoms, so hand-built encoders read each magnitude exactly."""
    data = planted_hierarchy(3000, d=32, num_parents=P, children_per_parent=C, active_parents=2, child_prob=0.7,
                             seed=seed)
    q, _ = torch.linalg.qr(torch.randn(32, P + P * C, generator=torch.Generator().manual_seed(seed)))
    atoms = q.t().contiguous()
    return data.codes @ atoms, data.codes, atoms, data.parent_of


def test_the_true_dictionary_has_no_absorption_and_no_splitting():
    x, true_codes, atoms, parent_of = _orthonormal_data()
    codes = torch.relu(x @ atoms.t())  # decoder = encoder = the true atoms
    torch.testing.assert_close(codes, true_codes, atol=1e-5, rtol=0)
    out = absorption_metrics(codes, atoms, true_codes, atoms, parent_of)
    assert out["absorption_rate"] == 0 and out["parent_miss_with_child"] == 0 and out["parent_miss_alone"] == 0
    assert out["latents_per_parent"] == 1 and out["split_parents"] == 0
    assert out["parent_recovery"] == pytest.approx(1) and out["child_recovery"] == pytest.approx(1)


def test_an_absorbing_sae_scores_high_and_a_split_parent_is_counted():
    x, true_codes, atoms, parent_of = _orthonormal_data()
    encoder, decoder = atoms.clone(), atoms.clone()
    for child in range(P, P + P * C):  # the child latent carries its parent; the parent latent is suppressed
        parent = int(parent_of[child])
        encoder[parent] -= 3 * atoms[child]
        decoder[child] = (atoms[parent] + atoms[child]) / 2 ** 0.5
    codes = torch.relu(x @ encoder.t())
    out = absorption_metrics(codes, decoder, true_codes, atoms, parent_of)
    assert out["absorption_rate"] == 1 and out["parent_miss_with_child"] == 1
    assert out["parent_miss_alone"] == 0  # the parent latent still fires without a child: absorption, not death
    assert out["child_recovery"] == pytest.approx(2 ** -0.5, abs=1e-6)

    # a child latent that fires but does not carry the parent direction is a miss, not absorption
    plain = absorption_metrics(torch.relu(x @ encoder.t()), atoms, true_codes, atoms, parent_of)
    assert plain["absorption_rate"] == 0 and plain["parent_miss_with_child"] == 1

    # halving: parent 0 absorbed through half its children only; a duplicate of parent 1 is a split
    half = encoder.clone()
    half[0] = atoms[0] - 3 * atoms[P]
    split_decoder = torch.cat([decoder, atoms[1:2] + 0.1 * atoms[2:3]])
    codes = torch.cat([torch.relu(x @ half.t()), torch.zeros(len(x), 1)], dim=1)
    out = absorption_metrics(codes, split_decoder, true_codes, atoms, parent_of)
    assert 0.7 < out["absorption_rate"] < 1 and out["split_parents"] == 1 / P
    assert out["latents_per_parent"] == pytest.approx(1 + 1 / P)
    with pytest.raises(ValueError, match="do not match"):
        absorption_metrics(codes[:10], split_decoder, true_codes, atoms, parent_of)
