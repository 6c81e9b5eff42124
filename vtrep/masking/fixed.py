"""A given boolean mask as a masking strategy — e.g. the ``bool_masked_pos`` a ``transformers`` VideoMAE got,
so ``VideoMAETask`` runs its own forward and loss on exactly the same tokens (parity tests, evaluation)."""

from __future__ import annotations

import math

import torch

from vtrep.masking.base import Grid, MaskingStrategy, MaskOutput


def mask_from_bool(bool_masked_pos: torch.Tensor) -> MaskOutput:
    """``transformers``' ``bool_masked_pos (B, N)`` (True = masked) as a vtrep :class:`MaskOutput`.

    Visible and masked ids are each in grid order, as ``x[~mask]`` and ``x[mask]`` select them, so
    encoder outputs, decoder outputs and targets line up token for token with ``transformers``'.
    """
    if bool_masked_pos.dtype != torch.bool or bool_masked_pos.ndim != 2:
        raise ValueError(f"bool_masked_pos must be a bool tensor (B, N), got {bool_masked_pos.dtype} "
                         f"{tuple(bool_masked_pos.shape)}")
    counts = bool_masked_pos.sum(dim=1)
    num_tokens = bool_masked_pos.shape[1]
    if bool((counts != counts[0]).any()) or not 0 < int(counts[0]) < num_tokens:
        raise ValueError(f"every sample must mask the same number of tokens, at least one and not all "
                         f"(as transformers requires); masked counts per sample: {counts.tolist()}")
    order = torch.argsort(bool_masked_pos.to(torch.uint8), dim=1, stable=True)  # visible first, grid order kept
    num_visible = num_tokens - int(counts[0])
    return MaskOutput.from_split(order[:, :num_visible], order[:, num_visible:])


class FixedMask(MaskingStrategy):
    """A masking strategy that always returns one given mask ``bool_masked_pos (B, N)``.

    It lets ``VideoMAETask`` run its own forward and loss on the mask a ``transformers`` model was given.
    """

    def __init__(self, bool_masked_pos: torch.Tensor) -> None:
        fixed = mask_from_bool(bool_masked_pos)
        super().__init__(mask_ratio=fixed.num_masked / bool_masked_pos.shape[1])
        self.fixed, self.shape = fixed, tuple(bool_masked_pos.shape)

    def forward(self, batch_size: int, grid: Grid, device: torch.device | str = "cpu",
                tokens: torch.Tensor | None = None) -> MaskOutput:
        if (batch_size, math.prod(grid)) != self.shape:
            raise ValueError(f"FixedMask holds a mask for (B, N) = {self.shape}, asked for ({batch_size}, "
                             f"{math.prod(grid)})")
        f = self.fixed
        return MaskOutput(f.ids_keep.to(device), f.ids_mask.to(device), f.ids_restore.to(device), f.mask.to(device))
