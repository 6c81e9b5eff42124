import pytest
import torch

from vtrep.masking import MaskOutput, RandomMasking, TubeMasking

GRID = (4, 5, 6)  # t, h, w -> N = 120, 30 per frame


def check_consistency(out: MaskOutput, n: int) -> None:
    b = out.ids_keep.shape[0]
    both = torch.cat([out.ids_keep, out.ids_mask], dim=1)
    # each token exactly once
    assert torch.equal(both.sort(dim=1).values, torch.arange(n).expand(b, n))
    # mask agrees with the index sets
    assert not out.mask.gather(1, out.ids_keep).any()
    assert out.mask.gather(1, out.ids_mask).all()
    # ids_restore unshuffles cat(keep, mask) back to grid order
    restored = torch.gather(both, 1, out.ids_restore)
    assert torch.equal(restored, torch.arange(n).expand(b, n))


def test_tube_counts_and_structure():
    out = TubeMasking(0.9)(8, GRID)
    t, h, w = GRID
    masked_per_frame = int(0.9 * h * w)  # VideoMAE: int(ratio * patches per frame)
    assert out.num_masked == t * masked_per_frame
    assert out.num_visible == t * (h * w - masked_per_frame)
    assert (out.mask.sum(dim=1) == t * masked_per_frame).all()  # identical count per sample
    frames = out.mask.view(8, t, h * w)
    assert (frames == frames[:, :1]).all()  # one spatial mask repeated over time
    check_consistency(out, t * h * w)
    assert torch.equal(out.ids_keep, out.ids_keep.sort(dim=1).values)  # grid order, like x[~mask]


def test_tube_masks_differ_across_samples():
    out = TubeMasking(0.5)(16, GRID)
    assert len({tuple(m.tolist()) for m in out.mask}) > 1


def test_random_counts_and_restore():
    out = RandomMasking(0.9)(8, GRID)
    n = 120
    assert out.num_visible == int(n * (1 - 0.9))
    assert (out.mask.sum(1) == n - int(n * (1 - 0.9))).all()  # MAE-ST: len_keep = int(N * (1 - ratio))
    check_consistency(out, n)
    # spacetime-agnostic: per-frame masked counts vary
    per_frame = out.mask.view(8, 4, 30).sum(-1)
    assert per_frame.unique().numel() > 1


def test_random_masking_is_uniform_over_tokens():
    out = RandomMasking(0.75)(4000, (2, 2, 2))
    freq = out.mask.float().mean(0)
    assert torch.allclose(freq, torch.full_like(freq, 0.75), atol=0.03)


@pytest.mark.parametrize("ratio", [0.0, 1.0, -0.1, 1.5])
def test_bad_ratio(ratio):
    with pytest.raises(ValueError, match="mask_ratio"):
        TubeMasking(ratio)


def test_ratio_that_masks_nothing_per_frame():
    with pytest.raises(ValueError, match="mask_ratio=0.01"):
        TubeMasking(0.01)(2, (2, 3, 3))
