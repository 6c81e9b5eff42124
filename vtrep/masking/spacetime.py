"""MAE-ST random spacetime-agnostic masking."""

from __future__ import annotations

import torch

from vtrep.masking.base import Grid, MaskingStrategy, MaskOutput


class RandomMasking(MaskingStrategy):
    """Keep ``int(N · (1 − ratio))`` tokens chosen uniformly over space and time.

    Follows MAE-ST's ``random_masking``: ``ids_shuffle = argsort(uniform noise)``, the first
    ``len_keep`` are visible, ``ids_restore = argsort(ids_shuffle)``. Ids stay in shuffle order.
    """

    def forward(self, batch_size: int, grid: Grid, device: torch.device | str = "cpu",
                tokens: torch.Tensor | None = None) -> MaskOutput:
        num_tokens = grid[0] * grid[1] * grid[2]
        len_keep = int(num_tokens * (1 - self.mask_ratio))
        if len_keep == 0 or len_keep == num_tokens:
            raise ValueError(
                f"mask_ratio={self.mask_ratio} keeps {len_keep} of {num_tokens} tokens; "
                "random masking needs at least one visible and one masked token"
            )
        ids_shuffle = torch.argsort(torch.rand(batch_size, num_tokens, device=device), dim=1)
        return MaskOutput.from_split(ids_shuffle[:, :len_keep], ids_shuffle[:, len_keep:])
