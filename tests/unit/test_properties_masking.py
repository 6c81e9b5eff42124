"""Property-based tests: masking invariants and patchify round trips over random shapes and ratios."""

import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vtrep.layers.patch_embed import TubeletEmbed
from vtrep.layers.series_patch import num_series_patches, patchify_series
from vtrep.masking import (
    AdaMAESampler,
    ComplementaryPatchMasking,
    DualMasking,
    MaskOutput,
    RandomMasking,
    SeriesPatchMasking,
    TubeMasking,
    mask_from_bool,
    overlapping_crops,
    running_cell_keep,
)
from vtrep.objectives.targets import patchify_pixels, unpatchify_pixels

FAST = settings(max_examples=60, deadline=None)
sizes = st.integers(1, 6)
ratios = st.floats(0.02, 0.98)


def check_partition(out: MaskOutput, num_tokens: int) -> None:
    """ids_keep ∪ ids_mask partitions range(N) per sample; mask and ids_restore agree with them."""
    batch = out.ids_keep.shape[0]
    both = torch.cat([out.ids_keep, out.ids_mask], dim=1)
    grid_order = torch.arange(num_tokens).expand(batch, num_tokens)
    assert torch.equal(both.sort(dim=1).values, grid_order)
    assert not out.mask.gather(1, out.ids_keep).any() and out.mask.gather(1, out.ids_mask).all()
    assert torch.equal(out.mask.sum(dim=1), torch.full((batch,), out.num_masked))
    assert torch.equal(torch.gather(both, 1, out.ids_restore), grid_order)


def is_sorted(ids: torch.Tensor) -> bool:
    return bool((ids[:, 1:] > ids[:, :-1]).all())


@FAST
@given(batch=st.integers(1, 4), t=sizes, h=sizes, w=sizes, ratio=ratios)
def test_random_masking_keeps_int_n_times_one_minus_ratio(batch, t, h, w, ratio):
    num_tokens = t * h * w
    keep = int(num_tokens * (1 - ratio))  # MAE-ST's rounding, in float arithmetic
    if keep in (0, num_tokens):
        message = (f"mask_ratio={ratio} keeps {keep} of {num_tokens} tokens; "
                   "random masking needs at least one visible and one masked token")
        with pytest.raises(ValueError, match=re.escape(message)):
            RandomMasking(ratio)(batch, (t, h, w))
        return
    out = RandomMasking(ratio)(batch, (t, h, w))
    assert out.num_visible == keep and out.num_masked == num_tokens - keep
    check_partition(out, num_tokens)


@FAST
@given(batch=st.integers(1, 4), t=sizes, h=sizes, w=sizes, ratio=ratios)
def test_tube_masking_repeats_one_sorted_spatial_mask(batch, t, h, w, ratio):
    per_frame = h * w
    masked = int(ratio * per_frame)  # VideoMAE's rounding
    if masked in (0, per_frame):
        message = (f"mask_ratio={ratio} masks {masked} of {per_frame} patches per frame; "
                   "tube masking needs at least one masked and one visible patch")
        with pytest.raises(ValueError, match=re.escape(message)):
            TubeMasking(ratio)(batch, (t, h, w))
        return
    out = TubeMasking(ratio)(batch, (t, h, w))
    assert out.num_masked == t * masked and out.num_visible == t * (per_frame - masked)
    check_partition(out, t * per_frame)
    assert is_sorted(out.ids_keep) and is_sorted(out.ids_mask)  # grid order, like x[~mask]
    frames = out.mask.view(batch, t, per_frame)
    assert torch.equal(frames, frames[:, :1].expand_as(frames))


@FAST
@given(batch=st.integers(1, 3), channels=st.integers(1, 3), count=st.integers(1, 12), length=st.integers(1, 4),
       ratio=ratios)
def test_series_patch_masking_per_channel_counts_and_zero_fill(batch, channels, count, length, ratio):
    patches = torch.rand(batch, channels, count, length) + 1.0  # no patch is zero before masking
    keep = int(count * (1 - ratio))
    if keep in (0, count):
        with pytest.raises(ValueError, match=re.escape(f"keeps {keep} of {count} tokens")):
            SeriesPatchMasking(ratio).mask_patches(patches)
        return
    filled, out = SeriesPatchMasking(ratio).mask_patches(patches)
    check_partition(out, count)
    masked = out.mask.view(batch, channels, count)
    assert torch.equal(masked.sum(-1), torch.full((batch, channels), count - keep))
    assert (filled[masked] == 0).all() and torch.equal(filled[~masked], patches[~masked])
    (first, m1), (second, m2) = ComplementaryPatchMasking(ratio).views(patches)
    assert torch.equal(m2, ~m1) and torch.equal(first + second, patches)  # each patch shown exactly once


@FAST
@given(batch=st.integers(1, 3), t=sizes, h2=st.integers(1, 3), w2=st.integers(1, 3),
       decoder_ratio=st.sampled_from([0.25, 0.5, 0.75]))
def test_running_cell_keeps_a_fixed_share_of_each_cell_and_rotates_over_time(batch, t, h2, w2, decoder_ratio):
    keep = running_cell_keep(batch, (t, 2 * h2, 2 * w2), decoder_ratio).view(batch, t, h2, 2, w2, 2)
    cells = keep.permute(0, 1, 2, 4, 3, 5).reshape(batch, t, h2 * w2, 4)
    assert torch.equal(cells, cells[:, :, :1].expand_as(cells))  # one cell pattern tiled over the frame
    assert (cells.sum(-1) == 4 - int(4 * decoder_ratio)).all()
    assert torch.equal(cells[:, 1:], cells[:, :-1].roll(-1, dims=-1))  # pointer advances one slot per slice


@FAST
@given(batch=st.integers(1, 3), t=sizes, h2=st.integers(1, 3), w2=st.integers(1, 3), ratio=st.floats(0.3, 0.9))
def test_dual_masking_decodes_only_encoder_masked_tokens(batch, t, h2, w2, ratio):
    grid = (t, 2 * h2, 2 * w2)
    if int(ratio * grid[1] * grid[2]) == 0:
        return  # the tube property above covers the encoder's rejection
    out = DualMasking(TubeMasking(ratio))(batch, grid)
    for b in range(batch):
        decoded = out.ids_mask[b][out.valid[b]]
        assert decoded.unique().numel() == decoded.numel() and out.mask[b, decoded].all()
    # valid slots come first, padding after
    assert torch.equal(out.valid, out.valid.sort(dim=1, descending=True, stable=True).values)


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(1, 3), t=st.integers(1, 3), h=st.integers(1, 4), w=st.integers(1, 4),
       ratio=st.floats(0.1, 0.95))
def test_adamae_keeps_int_n_times_one_minus_ratio_in_grid_order(batch, t, h, w, ratio):
    grid, num_tokens = (t, h, w), t * h * w
    keep = int(num_tokens * (1 - ratio))
    sampler = AdaMAESampler(ratio, sampling_weight=0.0, num_heads=2)
    if keep in (0, num_tokens):
        with pytest.raises(ValueError, match=re.escape(f"mask_ratio={ratio} keeps {keep} of {num_tokens} tokens")):
            sampler.bind(8, grid)
        return
    sampler.bind(8, grid)
    out = sampler(batch, grid, tokens=torch.randn(batch, num_tokens, 8))
    assert out.num_visible == keep and is_sorted(out.ids_keep) and is_sorted(out.ids_mask)
    check_partition(out, num_tokens)
    torch.testing.assert_close(out.probs.sum(-1), torch.ones(batch))


@FAST
@given(batch=st.integers(1, 4), num_tokens=st.integers(2, 40), data=st.data())
def test_mask_from_bool_round_trips_any_equal_count_mask(batch, num_tokens, data):
    masked = data.draw(st.integers(1, num_tokens - 1))
    rows = [torch.randperm(num_tokens)[:masked] for _ in range(batch)]
    bool_mask = torch.zeros(batch, num_tokens, dtype=torch.bool)
    for b, ids in enumerate(rows):
        bool_mask[b, ids] = True
    out = mask_from_bool(bool_mask)
    assert torch.equal(out.mask, bool_mask) and is_sorted(out.ids_keep) and is_sorted(out.ids_mask)
    check_partition(out, num_tokens)
    if batch > 1:
        bool_mask[0] = ~bool_mask[0]
        if 2 * masked != num_tokens:
            with pytest.raises(ValueError, match="every sample must mask the same number of tokens"):
                mask_from_bool(bool_mask)


@FAST
@given(batch=st.integers(1, 3), channels=st.integers(1, 2), length=st.integers(2, 40), data=st.data())
def test_overlapping_crops_share_their_overlap_and_are_contiguous(batch, channels, length, data):
    min_overlap = data.draw(st.integers(1, length))
    base = torch.arange(batch * channels, dtype=torch.float).view(batch, channels, 1) * 1000
    x = base + torch.arange(length, dtype=torch.float)
    pair = overlapping_crops(x, min_overlap, generator=torch.Generator().manual_seed(data.draw(st.integers(0, 99))))
    assert min_overlap <= pair.overlap <= length
    assert torch.equal(pair.first[..., -pair.overlap:], pair.second[..., :pair.overlap])
    for crop in (pair.first, pair.second):
        steps = crop - base
        assert (steps.diff(dim=-1) == 1).all() and (steps >= 0).all() and (steps < length).all()


def test_crops_need_a_non_empty_overlap():
    with pytest.raises(ValueError, match=re.escape("min_overlap must be >= 1, got 0")):
        overlapping_crops(torch.zeros(1, 1, 8), min_overlap=0)


# --- patchify round trips -----------------------------------------------------------------------------------------

@FAST
@given(batch=st.integers(1, 2), chans=st.integers(1, 3), t=st.integers(1, 3), hw=st.integers(1, 3),
       tubelet=st.integers(1, 3), patch=st.integers(1, 4), data=st.data())
def test_video_patchify_round_trip_and_layout(batch, chans, t, hw, tubelet, patch, data):
    video = torch.randn(batch, chans, t * tubelet, hw * patch, hw * patch)
    pixels = patchify_pixels(video, patch, tubelet)
    assert pixels.shape == (batch, t * hw * hw, tubelet * patch * patch, chans)
    assert torch.equal(unpatchify_pixels(pixels, (t, hw, hw), patch, tubelet), video)
    embed = TubeletEmbed(hw * patch, t * tubelet, patch, tubelet, chans, 4)
    assert embed.grid == (t, hw, hw) and torch.equal(embed.patchify(video), pixels.flatten(2))
    # token (ti, hi, wi) is t-major; its pixel (a, i, j) of colour c is video[c, ti·kt + a, hi·p + i, wi·p + j]
    ti, hi, wi = (data.draw(st.integers(0, n - 1)) for n in (t, hw, hw))
    a, i, j = (data.draw(st.integers(0, n - 1)) for n in (tubelet, patch, patch))
    token, pixel = (ti * hw + hi) * hw + wi, (a * patch + i) * patch + j
    assert torch.equal(pixels[:, token, pixel], video[:, :, ti * tubelet + a, hi * patch + i, wi * patch + j])


@FAST
@given(size=st.integers(2, 40), patch=st.integers(2, 9), frames=st.integers(1, 12), tubelet=st.integers(1, 4))
def test_indivisible_video_shapes_are_rejected_by_name(size, patch, frames, tubelet):
    if size % patch:
        hint = max(patch, size // patch * patch)
        message = (f"img_size={size} is not divisible by patch_size={patch}; "
                   f"choose img_size as a multiple of {patch} (e.g. {hint})")
        with pytest.raises(ValueError, match=re.escape(message)):
            TubeletEmbed(size, frames * tubelet, patch, tubelet, 3, 8)
    if frames % tubelet:
        with pytest.raises(ValueError, match=re.escape(f"num_frames={frames} is not divisible by tubelet_size")):
            TubeletEmbed(patch, frames, patch, tubelet, 3, 8)


@FAST
@given(batch=st.integers(1, 2), channels=st.integers(1, 3), length=st.integers(1, 60), patch=st.integers(1, 16),
       stride=st.integers(1, 16))
def test_series_patches_end_at_the_last_step_and_fold_back(batch, channels, length, patch, stride):
    x = torch.randn(batch, channels, length)
    if length < patch:
        with pytest.raises(ValueError, match=re.escape(f"series of length {length} is shorter than "
                                                       f"patch_length={patch}")):
            patchify_series(x, patch, stride)
        return
    patches = patchify_series(x, patch, stride)
    count = num_series_patches(length, patch, stride)
    start = length - (patch + stride * (count - 1))  # left-trimmed steps
    assert patches.shape == (batch, channels, count, patch) and 0 <= start < stride
    # fold back: every step a patch covers gets its value back, wherever patches overlap
    folded = torch.full_like(x, float("nan"))
    for k in range(count):
        begin = start + k * stride
        folded[..., begin: begin + patch] = patches[..., k, :]
    covered = ~torch.isnan(folded[0, 0])
    assert torch.equal(folded[..., covered], x[..., covered]) and covered[-1]
    if stride <= patch:
        assert covered[start:].all() and not covered[:start].any()
    if stride == patch:
        assert torch.equal(patches.flatten(-2), x[..., start:])


@pytest.mark.parametrize("patch, stride", [(0, 1), (1, 0), (-2, 3)])
def test_series_patch_arguments_must_be_positive(patch, stride):
    message = f"patch_length and stride must be >= 1, got {patch}, {stride}"
    with pytest.raises(ValueError, match=re.escape(message)):
        num_series_patches(10, patch, stride)
