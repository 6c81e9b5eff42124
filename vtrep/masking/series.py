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

    @staticmethod
    def zero_fill(patches: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        """``patches (B, C, Np, P)`` with the patches where ``masked (B, C, Np)`` is True set to 0."""
        return patches.masked_fill(masked.unsqueeze(-1), 0.0)
