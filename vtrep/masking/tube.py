"""VideoMAE tube masking: one random spatial mask, repeated over every temporal slice."""

from __future__ import annotations

import torch

from vtrep.masking.base import Grid, MaskingStrategy, MaskOutput


class TubeMasking(MaskingStrategy):
    """Mask ``int(ratio · h·w)`` spatial positions per sample, the same ones at every ``t``.

    As in VideoMAE's ``TubeMaskingGenerator`` every sample masks the same number of tokens,
    ``t · int(ratio · h·w)``. Visible and masked ids are each sorted in grid order, matching
    VideoMAE's boolean-mask selection ``x[~mask]`` (which keeps the original token order).
    """

    def forward(self, batch_size: int, grid: Grid, device: torch.device | str = "cpu",
                tokens: torch.Tensor | None = None) -> MaskOutput:
        t, h, w = grid
        per_frame = h * w
        num_masked = int(self.mask_ratio * per_frame)
        if num_masked == 0 or num_masked == per_frame:
            raise ValueError(
                f"mask_ratio={self.mask_ratio} masks {num_masked} of {per_frame} patches per frame; "
                "tube masking needs at least one masked and one visible patch"
            )
        order = torch.argsort(torch.rand(batch_size, per_frame, device=device), dim=1)
        keep_2d = order[:, num_masked:].sort(dim=1).values
        mask_2d = order[:, :num_masked].sort(dim=1).values
        offsets = torch.arange(t, device=device).view(1, t, 1) * per_frame
        ids_keep = (keep_2d.unsqueeze(1) + offsets).flatten(1)
        ids_mask = (mask_2d.unsqueeze(1) + offsets).flatten(1)
        return MaskOutput.from_split(ids_keep, ids_mask)
