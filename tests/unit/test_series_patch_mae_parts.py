"""PatchTST pieces: RevIN, left-trimmed patching, per-channel zero-fill masking, masked-patch loss."""

import pytest
import torch

from vtrep.layers.revin import RevIN
from vtrep.layers.series_patch import num_series_patches, patchify_series
from vtrep.masking.series import SeriesPatchMasking
from vtrep.objectives.series import MaskedPatchMSE


def test_revin_round_trip_and_statistics():
    x = (torch.randn(4, 50, 3) * torch.tensor([1.0, 10.0, 0.1]) + torch.tensor([5.0, -2.0, 0.0])).transpose(1, 2)
    revin = RevIN(3)
    with torch.no_grad():
        revin.weight.copy_(torch.tensor([2.0, 0.5, 1.5]))
        revin.bias.copy_(torch.tensor([0.1, -0.3, 0.0]))
    y = revin.normalise(x)
    torch.testing.assert_close(revin.denormalise(y), x, rtol=1e-4, atol=1e-4)
    plain = RevIN(3, affine=False).normalise(x)
    torch.testing.assert_close(plain.mean(-1), torch.zeros(4, 3), atol=1e-5, rtol=0)
    var = x.var(-1, unbiased=False)  # population variance, eps inside the square root
    torch.testing.assert_close(plain.var(-1, unbiased=False), var / (var + 1e-5), atol=1e-4, rtol=0)
    with pytest.raises(RuntimeError, match="before normalise"):
        RevIN(2).denormalise(x)


@pytest.mark.parametrize("length, patch, stride, expected", [(512, 16, 8, 63), (336, 12, 12, 28), (10, 16, 8, 1),
                                                             (100, 12, 12, 8)])
def test_patch_count_formula(length, patch, stride, expected):
    assert num_series_patches(length, patch, stride) == expected


def test_patches_end_at_the_last_step():
    x = torch.arange(100, dtype=torch.float).view(1, 1, 100)
    patches = patchify_series(x, 12, 12)  # 8 patches cover the last 96 steps; steps 0-3 are trimmed
    assert patches.shape == (1, 1, 8, 12)
    assert patches[0, 0, 0, 0] == 4 and patches[0, 0, -1, -1] == 99
    overlapping = patchify_series(x, 16, 8)
    assert overlapping[0, 0, -1, -1] == 99 and overlapping[0, 0, 1, 0] - overlapping[0, 0, 0, 0] == 8
    with pytest.raises(ValueError, match="shorter than patch_length"):
        patchify_series(torch.zeros(1, 1, 5), 8, 8)


def test_masks_are_per_channel_and_zero_filled():
    torch.manual_seed(0)
    patches = torch.randn(6, 3, 20, 4) + 10  # no patch is zero before masking
    filled, mask = SeriesPatchMasking(0.4).mask_patches(patches)
    masked = mask.mask.view(6, 3, 20)
    assert (masked.sum(-1) == 20 - int(20 * 0.6)).all()  # each channel keeps int(Np (1 - rho))
    assert not all(torch.equal(masked[b, 0], masked[b, c]) for b in range(6) for c in range(1, 3))
    assert (filled[masked] == 0).all() and torch.equal(filled[~masked], patches[~masked])
    assert filled.shape == patches.shape  # masked patches stay in the sequence


def test_loss_only_on_masked_patches():
    target = torch.randn(2, 2, 5, 3)
    masked = torch.zeros(2, 2, 5, dtype=torch.bool)
    masked[0, 1, 2] = masked[1, 0, 4] = True
    pred = target.clone()
    pred[~masked] += 100.0  # huge errors on visible patches must not count
    pred[0, 1, 2] += 1.0
    assert MaskedPatchMSE()(pred, target, masked).item() == pytest.approx(0.5)
