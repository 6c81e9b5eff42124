"""VideoMAE V2 dual masking: a running-cell mask on the decoder side (Wang et al., CVPR 2023)."""

from __future__ import annotations

from dataclasses import replace

import torch
from einops import repeat

from vtrep.masking.base import Grid, MaskingStrategy, MaskOutput
from vtrep.masking.tube import TubeMasking


def running_cell_keep(batch_size: int, grid: Grid, mask_ratio: float = 0.5,
                      device: torch.device | str = "cpu") -> torch.Tensor:
    """``(B, N)`` bool, ``True`` where the decoder keeps (reconstructs) a token.

    VideoMAE V2's ``RunningCellMaskingGenerator``: each 2×2 spatial cell (raster order) holds
    ``int(4 · ratio)`` dropped slots followed by kept ones, as a queue read from a pointer. The
    pointer starts at a random offset per sample and advances by one at every temporal slice, so
    the dropped slots run through the cell over time; the cell pattern is tiled over the frame.
    """
    t, h, w = grid
    if h % 2 or w % 2:
        raise ValueError(f"running-cell masking tiles 2x2 cells and needs an even token grid, got h={h}, w={w}")
    num_dropped = int(4 * mask_ratio)
    if not 0 < num_dropped < 4:
        raise ValueError(f"decoder mask_ratio={mask_ratio} drops {num_dropped} of 4 cell slots; need 1 to 3")
    queue = torch.tensor([False] * num_dropped + [True] * (4 - num_dropped), device=device)
    start = torch.randint(0, 4, (batch_size, 1, 1), device=device)
    # The reference advances the pointer before reading the first slice's cell, hence the + 1.
    step = torch.arange(t, device=device).view(1, t, 1) + 1
    slot = torch.arange(4, device=device).view(1, 1, 4)
    cell = queue[(slot + start + step) % 4]
    cells = cell.view(batch_size, t, 2, 2)
    return repeat(cells, "b t i j -> b t (hh i) (ww j)", hh=h // 2, ww=w // 2).flatten(1)


class DualMasking(MaskingStrategy):
    """An encoder mask plus VideoMAE V2's running-cell decoder mask.

    The encoder strategy (default tube 0.9) chooses the visible tokens; the decoder then
    reconstructs only the encoder-masked tokens that the running-cell mask keeps, and the loss
    covers exactly those (masked by the encoder and kept by the decoder). Their number varies by
    sample, so ``ids_mask`` is padded to the largest count in the batch and ``valid`` marks the
    padding, which the decoder's attention and the loss ignore.

    Deviation: VideoMAE V2's code gives the decoder every token the running cell keeps, including
    tokens the encoder saw, and takes its loss on all of them; we follow the paper's statement (and
    this project's spec) that the loss is on encoder-masked tokens only, and do not spend decoder
    work on tokens that would not be scored.

    Args:
        encoder: the encoder-side strategy (its ``mask_ratio`` is this strategy's).
        decoder_mask_ratio: fraction of each 2×2 cell the decoder drops (VideoMAE V2: 0.5).
    """

    def __init__(self, encoder: MaskingStrategy | None = None, decoder_mask_ratio: float = 0.5) -> None:
        encoder = encoder if encoder is not None else TubeMasking(0.9)
        super().__init__(encoder.mask_ratio)
        if not 0 < int(4 * decoder_mask_ratio) < 4:
            raise ValueError(f"decoder_mask_ratio={decoder_mask_ratio} must drop 1 to 3 of the 4 cell slots")
        self.encoder = encoder
        self.decoder_mask_ratio = decoder_mask_ratio

    @property
    def needs_tokens(self) -> bool:  # type: ignore[override]
        return self.encoder.needs_tokens

    def bind(self, embed_dim: int, grid: Grid) -> None:
        self.encoder.bind(embed_dim, grid)

    def forward(self, batch_size: int, grid: Grid, device: torch.device | str = "cpu",
                tokens: torch.Tensor | None = None) -> MaskOutput:
        out = self.encoder(batch_size, grid, device, tokens=tokens)
        keep = running_cell_keep(batch_size, grid, self.decoder_mask_ratio, out.ids_mask.device)
        take = torch.gather(keep, 1, out.ids_mask)
        # Kept tokens first, each group in the encoder's order; then cut to the largest kept count.
        order = torch.sort((~take).to(torch.int8), dim=1, stable=True).indices
        count = int(take.sum(dim=1).max().clamp_min(1))
        ids_mask = torch.gather(out.ids_mask, 1, order)[:, :count]
        valid = torch.gather(take, 1, order)[:, :count]
        return replace(out, ids_mask=ids_mask, valid=valid)
