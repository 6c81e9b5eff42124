"""TS2Vec's timestamp masking and its overlapping random crops (contextual consistency)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


class TimestampMasking:
    """Keep each step of each series independently with probability ``1 − p`` (TS2Vec's ``binomial``, p = 0.5).

    Masking acts on the latent after the encoder's input projection, so it is applied inside
    :class:`~vtrep.backbones.dilated_conv.DilatedConvEncoder` through its ``keep`` argument.
    """

    def __init__(self, mask_prob: float = 0.5) -> None:
        if not 0.0 <= mask_prob < 1.0:
            raise ValueError(f"mask_prob must be in [0, 1), got {mask_prob}")
        self.mask_prob = mask_prob

    def __call__(self, batch: int, length: int, device: torch.device | str = "cpu",
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """``keep (B, T)`` bool."""
        return torch.rand(batch, length, generator=generator, device=device) >= self.mask_prob


@dataclass
class CropPair:
    """Two overlapping crops of a batch and where their common segment lies in each encoded view.

    ``first (B, C, T1)`` ends with the overlap, ``second (B, C, T2)`` starts with it; the overlap is
    ``overlap`` steps long, so ``encode(first)[:, -overlap:]`` and ``encode(second)[:, :overlap]``
    describe the same timestamps of the original series.
    """

    first: torch.Tensor
    second: torch.Tensor
    overlap: int


def _take_per_row(x: torch.Tensor, starts: torch.Tensor, length: int) -> torch.Tensor:
    """``x (B, C, T)`` → ``(B, C, length)`` with row ``b`` starting at ``starts[b]``."""
    index = starts[:, None] + torch.arange(length, device=x.device)
    return torch.gather(x, 2, index[:, None, :].expand(-1, x.shape[1], -1))


def overlapping_crops(x: torch.Tensor, min_overlap: int = 2, generator: torch.Generator | None = None) -> CropPair:
    """TS2Vec's random cropping: an overlap ``[a1, b1)`` inside two crops ``[a2, b1)`` and ``[a1, b2)``.

    The overlap length is uniform in ``[min_overlap, T]`` (TS2Vec: ``2 ** (temporal_unit + 1)``), its
    position uniform, the crops' outer ends uniform around it, and each series of the batch is then
    shifted by its own random offset that keeps both crops inside the series.
    """
    length = x.shape[-1]
    if min_overlap < 1:  # an empty overlap would make ``first[..., -0:]`` the whole crop, not nothing
        raise ValueError(f"min_overlap must be >= 1, got {min_overlap}")
    if length < min_overlap:
        raise ValueError(f"series of length {length} are shorter than min_overlap={min_overlap}")

    def randint(low: int, high: int, size: tuple = ()) -> torch.Tensor:  # high exclusive
        return torch.randint(low, high, size, generator=generator)

    overlap = int(randint(min_overlap, length + 1))
    left = int(randint(0, length - overlap + 1))
    right = left + overlap
    outer_left = int(randint(0, left + 1))
    outer_right = int(randint(right, length + 1))
    offsets = randint(-outer_left, length - outer_right + 1, (x.shape[0],)).to(x.device)
    first = _take_per_row(x, offsets + outer_left, right - outer_left)
    second = _take_per_row(x, offsets + left, outer_right - left)
    return CropPair(first, second, overlap)
