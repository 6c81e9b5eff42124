import pytest
import torch

from vtrep.layers.patch_embed import TubeletEmbed
from vtrep.objectives import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    MaskedReconstructionLoss,
    PixelTarget,
)
from vtrep.objectives.targets import patchify_pixels, unpatchify_pixels

P, KT = 4, 2


def normalised_clip(b=2, t=4, s=8):
    raw = torch.rand(b, 3, t, s, s)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1, 1)
    return raw, (raw - mean) / std


def hand_patch(raw, b, token, grid):
    """Pixels of one token as a list of per-channel lists, by explicit indexing."""
    t, h, w = grid
    ti, rem = divmod(token, h * w)
    hi, wi = divmod(rem, w)
    cube = raw[b, :, ti * KT:(ti + 1) * KT, hi * P:(hi + 1) * P, wi * P:(wi + 1) * P]
    return cube.reshape(3, -1)  # (C, kt*kh*kw) in (kt kh kw) order


def test_videomae_norm_matches_hand_computation():
    raw, clip = normalised_clip()
    embed = TubeletEmbed(8, 4, P, KT, 3, 16)
    target = PixelTarget("videomae_norm")(embed.patchify(clip))
    grid = embed.grid
    for b in range(2):
        for token in (0, 3, 7):
            px = hand_patch(raw, b, token, grid)
            n = px.shape[1]
            mean = px.sum(1, keepdim=True) / n
            std = ((px - mean).pow(2).sum(1, keepdim=True) / (n - 1)).sqrt()  # unbiased
            expected = ((px - mean) / (std + 1e-6)).t().reshape(-1)  # (p c) layout
            assert torch.allclose(target[b, token], expected, atol=1e-4)


def test_maest_norm_matches_hand_computation():
    raw, clip = normalised_clip()
    embed = TubeletEmbed(8, 4, P, KT, 3, 16)
    target = PixelTarget("maest_norm")(embed.patchify(clip))
    for b in range(2):
        for token in (1, 6):
            px = hand_patch(raw, b, token, embed.grid).t().reshape(-1)
            n = px.numel()
            mean = px.sum() / n
            var = (px - mean).pow(2).sum() / (n - 1)
            assert torch.allclose(target[b, token], (px - mean) / (var + 1e-6).sqrt(), atol=1e-4)


def test_raw_target_is_unnormalised_pixels():
    raw, clip = normalised_clip()
    embed = TubeletEmbed(8, 4, P, KT, 3, 16)
    target = PixelTarget("raw")(embed.patchify(clip))
    assert torch.allclose(target[1, 5], hand_patch(raw, 1, 5, embed.grid).t().reshape(-1), atol=1e-5)


def test_modes_differ_in_normalisation_axis():
    _, clip = normalised_clip()
    patches = TubeletEmbed(8, 4, P, KT, 3, 16).patchify(clip)
    a = PixelTarget("videomae_norm")(patches).unflatten(-1, (-1, 3))
    b = PixelTarget("maest_norm")(patches)
    assert torch.allclose(a.mean(dim=-2), torch.zeros(()), atol=1e-5)  # zero mean per channel
    assert torch.allclose(b.mean(dim=-1), torch.zeros(()), atol=1e-5)  # zero mean per patch
    assert not torch.allclose(a.flatten(2), b, atol=1e-2)


def test_patchify_round_trip_and_embed_layout():
    _, clip = normalised_clip()
    pixels = patchify_pixels(clip, P, KT)
    assert torch.equal(unpatchify_pixels(pixels, (2, 2, 2), P, KT), clip)
    embed = TubeletEmbed(8, 4, P, KT, 3, 16)
    assert torch.equal(embed.patchify(clip), pixels.flatten(2))
    conv = embed.proj(clip).flatten(2).transpose(1, 2)
    assert torch.allclose(embed(clip), conv, atol=1e-5)


def test_to_pixels_inverts_target():
    _, clip = normalised_clip()
    patches = TubeletEmbed(8, 4, P, KT, 3, 16).patchify(clip)
    ids = torch.tensor([[0, 2, 5], [1, 3, 7]])
    for mode in ("videomae_norm", "maest_norm", "raw"):
        tgt = PixelTarget(mode)
        pixels = tgt.to_pixels(tgt(patches, ids), patches, ids)
        assert torch.allclose(pixels, tgt.pixel_patches(patches, ids), atol=1e-4), mode


def test_loss_only_on_masked_tokens():
    _, clip = normalised_clip()
    embed = TubeletEmbed(8, 4, P, KT, 3, 16)
    ids_keep = torch.tensor([[0, 1, 2, 3], [4, 5, 6, 7]])
    ids_mask = torch.tensor([[4, 5, 6, 7], [0, 1, 2, 3]])
    loss_fn = MaskedReconstructionLoss(PixelTarget("videomae_norm"))
    pred = torch.randn(2, 4, embed.patch_dim)
    base = loss_fn(pred, embed.patchify(clip), ids_mask).loss
    # change only the pixels of visible tokens: the loss must not move
    patches = embed.patchify(clip).clone()
    patches.scatter_(1, ids_keep[..., None].expand(-1, -1, patches.shape[-1]), torch.randn(2, 4, patches.shape[-1]))
    assert torch.equal(loss_fn(pred, patches, ids_mask).loss, base)
    # change one masked token: it must
    patches[0, 4] += torch.randn_like(patches[0, 4])
    assert not torch.equal(loss_fn(pred, patches, ids_mask).loss, base)


def test_bad_target_arguments():
    with pytest.raises(ValueError, match="target mode"):
        PixelTarget("norm")
    with pytest.raises(ValueError, match="std > 0"):
        PixelTarget(std=(0.0, 1.0, 1.0))
