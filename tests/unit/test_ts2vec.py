"""TS2Vec parts: same-padding dilated convolutions, NaN/timestamp masking, overlapping crops, SWA, loss scales."""

import pytest
import torch

from vtrep.backbones import DilatedConvEncoder
from vtrep.backbones.dilated_conv import SamePadConv
from vtrep.eval.series_features import series_representations
from vtrep.masking import TimestampMasking, overlapping_crops
from vtrep.objectives.contrastive import hierarchical_contrastive_loss
from vtrep.tasks import TS2VecTask


@pytest.mark.parametrize("kernel, dilation", [(3, 1), (3, 4), (2, 1), (2, 3), (4, 2)])
def test_same_pad_conv_keeps_length(kernel, dilation):
    assert SamePadConv(2, 3, kernel, dilation)(torch.randn(1, 2, 17)).shape == (1, 3, 17)


def test_encoder_shapes_and_receptive_field():
    torch.manual_seed(0)
    encoder = DilatedConvEncoder(2, output_dim=8, hidden_dim=4, depth=2).eval()
    x = torch.randn(3, 2, 40)
    out = encoder(x)
    assert out.shape == (3, 40, 8)
    # blocks of dilation 1, 2, 4 with two k=3 convolutions each reach 2·(1+2+4) = 14 steps either side
    changed = x.clone()
    changed[:, :, 39] += 5.0
    diff = (encoder(changed) - out).abs().amax(dim=(0, 2))
    assert diff[:25].max() == 0 and diff[25:].min() > 0
    with pytest.raises(ValueError, match=r"expected series \(B, 2, T\)"):
        encoder(torch.randn(3, 1, 40))


def test_nan_steps_are_masked_like_dropped_timestamps():
    torch.manual_seed(0)
    encoder = DilatedConvEncoder(1, output_dim=8, hidden_dim=4, depth=2).eval()
    x = torch.randn(2, 1, 30)
    keep = torch.ones(2, 30, dtype=torch.bool)
    keep[:, 25:] = False
    padded = x.clone()
    padded[:, :, 25:] = float("nan")
    torch.testing.assert_close(encoder(padded), encoder(x, keep))
    assert torch.isfinite(series_representations(encoder, padded)).all()


def test_timestamp_masking_rate_and_range():
    keep = TimestampMasking(0.5)(200, 100, generator=torch.Generator().manual_seed(0))
    assert keep.dtype == torch.bool and abs(keep.float().mean().item() - 0.5) < 0.02
    with pytest.raises(ValueError, match="mask_prob"):
        TimestampMasking(1.0)


@pytest.mark.parametrize("seed", range(20))
def test_crops_share_their_overlap_per_series(seed):
    length = 23
    x = (torch.arange(5)[:, None, None] * 100 + torch.arange(length)).float().expand(5, 2, length)
    crops = overlapping_crops(x, generator=torch.Generator().manual_seed(seed))
    assert 2 <= crops.overlap <= length
    assert crops.first.shape[-1] >= crops.overlap and crops.second.shape[-1] >= crops.overlap
    torch.testing.assert_close(crops.first[..., -crops.overlap:], crops.second[..., :crops.overlap])
    # every step comes from its own series, consecutive and inside it
    for view in (crops.first, crops.second):
        steps = view - torch.arange(5)[:, None, None] * 100
        assert (steps >= 0).all() and (steps < length).all()
        assert (steps.diff(dim=-1) == 1).all()


def test_temporal_unit_skips_fine_scales():
    z1, z2 = torch.randn(4, 8, 6), torch.randn(4, 8, 6)
    instance_only = hierarchical_contrastive_loss(z1, z2, alpha=1.0)
    # scales 8, 4, 2, 1 → 4 terms; with alpha 0 and temporal_unit past every scale nothing is left
    assert hierarchical_contrastive_loss(z1, z2, alpha=0.0, temporal_unit=4) == 0
    full = hierarchical_contrastive_loss(z1, z2, alpha=0.5)
    coarse = hierarchical_contrastive_loss(z1, z2, alpha=0.5, temporal_unit=1)
    temporal_fine = hierarchical_contrastive_loss(z1, z2, alpha=0.0) * 4 - \
        hierarchical_contrastive_loss(z1, z2, alpha=0.0, temporal_unit=1) * 4
    torch.testing.assert_close((full - coarse) * 4, 0.5 * temporal_fine)
    assert instance_only > 0


def test_averaged_encoder_is_the_mean_of_init_and_every_iterate():
    torch.manual_seed(0)
    task = TS2VecTask(DilatedConvEncoder(1, output_dim=8, hidden_dim=4, depth=1), lr=1e-2)
    optimizer = task.configure_optimizers()
    snapshots = [[p.detach().clone() for p in task.encoder.parameters()]]
    for _ in range(3):
        loss = task.loss(torch.randn(6, 1, 20))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        task.on_train_batch_end(None, None, 0)
        snapshots.append([p.detach().clone() for p in task.encoder.parameters()])
    for i, averaged in enumerate(task.representation_encoder.parameters()):
        torch.testing.assert_close(averaged, torch.stack([s[i] for s in snapshots]).mean(0))
        assert not averaged.requires_grad
    assert not torch.equal(snapshots[0][0], snapshots[-1][0])


def test_task_rejects_bad_settings():
    encoder = DilatedConvEncoder(1, output_dim=8, hidden_dim=4, depth=1)
    with pytest.raises(ValueError, match="alpha must be in"):
        TS2VecTask(encoder, alpha=1.5)
    with pytest.raises(ValueError, match="max_train_length must be >= 2"):
        TS2VecTask(encoder, max_train_length=1)
    with pytest.raises(ValueError, match="depth must be >= 1"):
        DilatedConvEncoder(1, depth=0)


def reference_pair_loss(z1, z2):
    """TS2Vec's formulation: drop the diagonal by stitching the triangles, then softmax over 2M − 1."""
    m = z1.shape[1]
    z = torch.cat([z1, z2], dim=1)
    sim = z @ z.transpose(1, 2)
    logits = torch.tril(sim, diagonal=-1)[:, :, :-1] + torch.triu(sim, diagonal=1)[:, :, 1:]
    logits = -torch.log_softmax(logits, dim=-1)
    i = torch.arange(m)
    return (logits[:, i, m + i - 1].mean() + logits[:, m + i, i].mean()) / 2


def test_pair_loss_equals_the_reference_formulation_with_gradients():
    from vtrep.objectives.contrastive import _pair_loss

    z1 = torch.randn(3, 7, 5, dtype=torch.float64, requires_grad=True)
    z2 = torch.randn(3, 7, 5, dtype=torch.float64, requires_grad=True)
    fast, reference = _pair_loss(z1, z2), reference_pair_loss(z1, z2)
    torch.testing.assert_close(fast, reference)
    for a, b in zip(torch.autograd.grad(fast, (z1, z2)), torch.autograd.grad(reference, (z1, z2))):
        torch.testing.assert_close(a, b)


def test_validation_loss_is_repeatable_and_leaves_the_training_draws_alone():
    task = TS2VecTask(DilatedConvEncoder(input_channels=1, output_dim=8, hidden_dim=4, depth=1)).eval()
    task.log = lambda *args, **kwargs: None  # no trainer to log to
    x = torch.randn(6, 1, 32)
    torch.manual_seed(5)
    expected_next_draw = torch.rand(())
    torch.manual_seed(5)
    first = task.validation_step((x,), 0)
    assert torch.rand(()) == expected_next_draw  # the global generator did not move
    torch.testing.assert_close(task.validation_step((x,), 0), first)
