import pytest
import torch

from vtrep.probes.linear_probe import LinearProbe, fit_linear_probe


def blobs(n, dim=16, classes=3, sep=3.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=g) * sep
    y = torch.arange(n) % classes
    return centres[y] + torch.randn(n, dim, generator=g), y


def test_probe_is_batchnorm_without_affine_then_linear():
    probe = LinearProbe(8, 3)
    assert isinstance(probe.norm, torch.nn.BatchNorm1d) and not probe.norm.affine
    assert probe.norm.eps == 1e-6
    assert probe.head.weight.std() < 0.02  # trunc_normal(std=0.01) as in MAE


def test_probe_separates_separable_features():
    x, y = blobs(300)
    res = fit_linear_probe(x[:200], y[:200], x[200:], y[200:], 3, epochs=30)
    assert res.top1 > 0.95 and res.num_train == 200 and res.num_eval == 100


def test_probe_is_at_chance_on_random_labels():
    x, _ = blobs(400, classes=1)
    y = torch.randint(0, 4, (400,), generator=torch.Generator().manual_seed(1))
    res = fit_linear_probe(x[:300], y[:300], x[300:], y[300:], 4, epochs=30)
    assert res.top1 < 0.45


def test_probe_is_invariant_to_feature_scale():
    """BatchNorm in front of the linear layer makes the protocol insensitive to feature scale."""
    x, y = blobs(300)
    a = fit_linear_probe(x[:200], y[:200], x[200:], y[200:], 3, epochs=20)
    b = fit_linear_probe(1000 * x[:200], y[:200], 1000 * x[200:], y[200:], 3, epochs=20)
    assert a.top1 == pytest.approx(b.top1, abs=0.03)


def test_probe_needs_two_clips():
    with pytest.raises(ValueError, match="at least 2 training clips"):
        fit_linear_probe(torch.randn(1, 4), torch.zeros(1, dtype=torch.long), torch.randn(1, 4),
                         torch.zeros(1, dtype=torch.long), 2)
