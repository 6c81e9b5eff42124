"""VideoMAE V2 running-cell decoder mask and dual masking."""

import pytest
import torch

from vtrep.decoders.mae_decoder import MAEDecoder, MAEDecoderConfig
from vtrep.masking import DualMasking, RandomMasking, TubeMasking, running_cell_keep
from vtrep.objectives.reconstruction import MaskedReconstructionLoss
from vtrep.objectives.targets import PixelTarget


def reference_cell(start: int, t: int) -> list[bool]:
    """The reference generator's cell at slice ``t``: queue [drop, drop, keep, keep] read from start + t + 1."""
    queue = [False, False, True, True]
    return [queue[(slot + start + t + 1) % 4] for slot in range(4)]


def test_running_cell_matches_the_reference_pattern():
    torch.manual_seed(0)
    grid = (6, 4, 6)
    keep = running_cell_keep(16, grid, 0.5).view(16, 6, 4, 6)
    for sample in keep:
        cell0 = sample[0, :2, :2].flatten().tolist()
        start = next(s for s in range(4) if reference_cell(s, 0) == cell0)
        for t in range(6):
            cell = torch.tensor(reference_cell(start, t)).view(2, 2)
            assert torch.equal(sample[t], cell.repeat(2, 3))
    assert (keep.sum(dim=(2, 3)) == 12).all()


def test_running_cell_ratio_and_bad_grids():
    assert running_cell_keep(2, (2, 2, 2), 0.25).view(2, 2, 4).sum(-1).eq(3).all()
    with pytest.raises(ValueError, match="even"):
        running_cell_keep(1, (2, 3, 4))
    with pytest.raises(ValueError, match="decoder_mask_ratio"):
        DualMasking(TubeMasking(0.9), decoder_mask_ratio=0.1)


@pytest.mark.parametrize("encoder", [TubeMasking(0.75), RandomMasking(0.75)])
def test_decoder_reconstructs_exactly_encoder_masked_and_decoder_kept(encoder):
    torch.manual_seed(1)
    grid = (3, 4, 4)  # t = 3: kept counts differ by sample, so padding is exercised
    torch.manual_seed(1)
    out = DualMasking(encoder, 0.5)(8, grid)
    torch.manual_seed(1)
    enc = encoder(8, grid)
    keep = running_cell_keep(8, grid, 0.5)
    assert torch.equal(out.mask, enc.mask)
    for b in range(8):
        intended = set(torch.nonzero(enc.mask[b] & keep[b]).flatten().tolist())
        got = out.ids_mask[b][out.valid[b]].tolist()
        assert set(got) == intended and len(got) == len(intended)
        assert not set(out.ids_mask[b][~out.valid[b]].tolist()) & intended


def test_dual_mask_loss_ignores_padding_in_decoder_and_loss():
    torch.manual_seed(2)
    grid, dim, patch_dim = (3, 4, 4), 16, 12
    out = DualMasking(RandomMasking(0.75), 0.5)(4, grid)
    assert not out.valid.all(), "test needs padding"
    decoder = MAEDecoder(dim, patch_dim, grid, MAEDecoderConfig(16, 2, 2)).eval()
    latent = torch.randn(4, out.num_visible, dim)
    pred = decoder(latent, out)
    # Changing which ids the padding slots point at must not change the real predictions.
    shuffled = out.ids_mask.clone()
    shuffled[~out.valid] = torch.randint(0, 48, (int((~out.valid).sum()),))
    pred2 = decoder(latent, type(out)(**{**out.__dict__, "ids_mask": shuffled}))
    torch.testing.assert_close(pred[out.valid], pred2[out.valid])
    patches = torch.rand(4, 48, patch_dim)
    loss_fn = MaskedReconstructionLoss(PixelTarget(mode="raw", mean=(0.0,) * 3, std=(1.0,) * 3))
    rec = loss_fn(pred, patches, out.ids_mask, out.valid)
    target = torch.gather(patches, 1, out.ids_mask[..., None].expand(-1, -1, patch_dim))
    err = (pred - target).pow(2).mean(-1)
    torch.testing.assert_close(rec.loss, err[out.valid].mean())
    assert (rec.per_token[~out.valid] == 0).all()
