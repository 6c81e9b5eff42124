"""The one output type every masking strategy returns, and the strategy interface.

A strategy decides which of the ``N = t·h·w`` tokens the encoder sees and which the decoder
reconstructs. The task never asks which strategy it holds: it reads ``ids_keep`` for the encoder,
``ids_mask`` (and ``valid``) for the decoder and the target, and adds
``MaskOutput.auxiliary_loss(per_token_error)`` to the objective: learned strategies such as
AdaMAE report their loss there, computed from the reconstruction error they were sampled for.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import torch
from torch import nn

Grid = tuple[int, int, int]


@dataclass
class MaskOutput:
    """Which tokens are visible and which are masked, per sample.

    Attributes:
        ids_keep: ``(B, Nv)`` token indices given to the encoder.
        ids_mask: ``(B, Nm)`` token indices the decoder reconstructs, in the order of its outputs.
            Without decoder masking these are all encoder-masked tokens; with it (VideoMAE V2 dual
            masking) a subset of them, padded to a common length.
        ids_restore: ``(B, N)`` inverse permutation of ``cat(ids_keep, encoder-masked ids)``:
            gathering the concatenated sequence with it puts every token back in grid order.
        mask: ``(B, N)`` bool, ``True`` where the encoder does not see a token (MAE convention).
        aux_loss: a scalar added to the objective that needs no reconstruction error, else ``None``.
        valid: ``(B, Nm)`` bool, ``False`` on padding slots of ``ids_mask``; ``None`` means all valid.
            Padding is ignored by decoder attention and by the loss.
        probs: ``(B, N)`` sampling distribution over tokens of a learned strategy (AdaMAE), for
            pictures and diagnostics; ``None`` otherwise.
        error_loss: ``f(ids_mask, per_token_error (B, Nm), valid) -> scalar`` for strategies that
            learn from the reconstruction error (AdaMAE's sampling loss), else ``None``.
    """

    ids_keep: torch.Tensor
    ids_mask: torch.Tensor
    ids_restore: torch.Tensor
    mask: torch.Tensor
    aux_loss: torch.Tensor | None = None
    valid: torch.Tensor | None = None
    probs: torch.Tensor | None = None
    error_loss: Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor] | None = None

    @property
    def num_visible(self) -> int:
        return self.ids_keep.shape[1]

    @property
    def num_masked(self) -> int:
        return self.ids_mask.shape[1]

    def auxiliary_loss(self, per_token_error: torch.Tensor) -> torch.Tensor | None:
        """The strategy's own loss given the ``(B, Nm)`` reconstruction error of ``ids_mask``, or ``None``."""
        parts = [] if self.aux_loss is None else [self.aux_loss]
        if self.error_loss is not None:
            parts.append(self.error_loss(self.ids_mask, per_token_error, self.valid))
        return sum(parts) if parts else None

    def select(self, n: int) -> MaskOutput:
        """The first ``n`` samples (for pictures); losses are dropped."""
        cut = {k: getattr(self, k)[:n] for k in ("ids_keep", "ids_mask", "ids_restore", "mask")}
        for k in ("valid", "probs"):
            value = getattr(self, k)
            cut[k] = None if value is None else value[:n]
        return replace(self, **cut, aux_loss=None, error_loss=None)

    @classmethod
    def from_split(cls, ids_keep: torch.Tensor, ids_mask: torch.Tensor, **extra) -> MaskOutput:
        """Build the output from the visible and masked index sets; ``extra`` fills the optional fields."""
        ids_shuffle = torch.cat([ids_keep, ids_mask], dim=1)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        mask = torch.ones_like(ids_shuffle, dtype=torch.bool)
        mask.scatter_(1, ids_keep, False)
        return cls(ids_keep, ids_mask, ids_restore, mask, **extra)


class MaskingStrategy(nn.Module):
    """Base class: ``forward(batch_size, grid, device, tokens=None) -> MaskOutput``.

    Strategies that look at the content (``needs_tokens = True``) receive the patch tokens
    ``(B, N, D)``; the others only need the grid, so the encoder can embed visible tokens only.
    Strategies with parameters sized by the backbone build them in :meth:`bind`, which the task
    calls with the backbone's width and token grid before training.
    """

    needs_tokens: bool = False

    def bind(self, embed_dim: int, grid: Grid) -> None:
        """Size the strategy for a backbone of width ``embed_dim`` and token grid ``grid``."""

    def __init__(self, mask_ratio: float = 0.9) -> None:
        super().__init__()
        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
        self.mask_ratio = mask_ratio

    def forward(self, batch_size: int, grid: Grid, device: torch.device | str = "cpu",
                tokens: torch.Tensor | None = None) -> MaskOutput:
        raise NotImplementedError
