"""PatchTST masking: random patches per channel, zero-filled and kept in the sequence (BERT-style)."""

from __future__ import annotations

import torch

from vtrep.masking.base import MaskOutput
from vtrep.masking.spacetime import RandomMasking


class SeriesPatchMasking(RandomMasking):
    """PatchTST's ``random_masking`` over patches ``(B, C, Np, P)``, independently for every channel.

    Channels are independent sequences (channel independence), so this is MAE-ST's argsort-of-noise
    masking over ``B·C`` sequences of ``Np`` tokens: each channel keeps ``int(Np · (1 − ρ))`` patches.
    Unlike the video MAEs, masked patches are not dropped: :meth:`zero_fill` sets them to zero and
    the encoder sees the full sequence. Default ρ = 0.4 (PatchTST self-supervised scripts).
    """

    def __init__(self, mask_ratio: float = 0.4) -> None:
        super().__init__(mask_ratio)

    def mask_patches(self, patches: torch.Tensor) -> tuple[torch.Tensor, MaskOutput]:
        """Zero-filled patches ``(B, C, Np, P)`` and the mask over ``B·C`` sequences (``mask (B·C, Np)``)."""
        batch, channels, count, _ = patches.shape
        mask = self(batch * channels, (count, 1, 1), patches.device)
        return self.zero_fill(patches, mask.mask.view(batch, channels, count)), mask

    def views(self, patches: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Masked inputs and their masks ``(B, C, Np)``: one view here, two for complementary masking."""
        filled, mask = self.mask_patches(patches)
        return [(filled, mask.mask.view(patches.shape[:3]))]

    @staticmethod
    def zero_fill(patches: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        """``patches (B, C, Np, P)`` with the patches where ``masked (B, C, Np)`` is True set to 0."""
        return patches.masked_fill(masked.unsqueeze(-1), 0.0)


class ComplementaryPatchMasking(SeriesPatchMasking):
    """PITS's complementary masking: a random mask and its complement give two views.

    Each view hides what the other shows, so together they reconstruct every patch once. The
    mask is drawn per channel as in :class:`SeriesPatchMasking` (PITS: ρ = 0.5).
    """

    def __init__(self, mask_ratio: float = 0.5) -> None:
        super().__init__(mask_ratio)

    def views(self, patches: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        (first, masked), = super().views(patches)
        return [(first, masked), (self.zero_fill(patches, ~masked), ~masked)]
