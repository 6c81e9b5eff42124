"""The one output type every masking strategy returns, and the strategy interface.

A strategy decides which of the ``N = t·h·w`` tokens the encoder sees. The task never asks
which strategy it holds: it reads ``ids_keep`` for the encoder, ``ids_mask`` for the decoder and
the target, and adds ``aux_loss`` (learned strategies such as AdaMAE report theirs here).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

Grid = tuple[int, int, int]


@dataclass
class MaskOutput:
    """Which tokens are visible and which are masked, per sample.

    Attributes:
        ids_keep: ``(B, Nv)`` token indices given to the encoder.
        ids_mask: ``(B, Nm)`` token indices the decoder reconstructs, in the order of its outputs.
        ids_restore: ``(B, N)`` inverse permutation of ``cat(ids_keep, ids_mask)``: gathering the
            concatenated sequence with it puts every token back in grid order.
        mask: ``(B, N)`` bool, ``True`` where a token is masked (the VideoMAE / MAE convention).
        aux_loss: scalar added to the objective by learned strategies, else ``None``.
    """

    ids_keep: torch.Tensor
    ids_mask: torch.Tensor
    ids_restore: torch.Tensor
    mask: torch.Tensor
    aux_loss: torch.Tensor | None = None

    @property
    def num_visible(self) -> int:
        return self.ids_keep.shape[1]

    @property
    def num_masked(self) -> int:
        return self.ids_mask.shape[1]

    @classmethod
    def from_split(cls, ids_keep: torch.Tensor, ids_mask: torch.Tensor, aux_loss: torch.Tensor | None = None) -> MaskOutput:
        """Build the output from the visible and masked index sets."""
        ids_shuffle = torch.cat([ids_keep, ids_mask], dim=1)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        mask = torch.ones_like(ids_shuffle, dtype=torch.bool)
        mask.scatter_(1, ids_keep, False)
        return cls(ids_keep, ids_mask, ids_restore, mask, aux_loss)


class MaskingStrategy(nn.Module):
    """Base class: ``forward(batch_size, grid, device, tokens=None) -> MaskOutput``.

    Strategies that look at the content (``needs_tokens = True``) receive the patch tokens
    ``(B, N, D)``; the others only need the grid, so the encoder can embed visible tokens only.
    """

    needs_tokens: bool = False

    def __init__(self, mask_ratio: float = 0.9) -> None:
        super().__init__()
        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
        self.mask_ratio = mask_ratio

    def forward(self, batch_size: int, grid: Grid, device: torch.device | str = "cpu",
                tokens: torch.Tensor | None = None) -> MaskOutput:
        raise NotImplementedError
