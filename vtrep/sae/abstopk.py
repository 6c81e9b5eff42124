"""AbsTopK SAE: the ``k`` pre-activations of largest magnitude survive with their signs.

``codes = pre ⊙ 1[|pre| among the k largest of its row]`` — no ReLU, so a latent can fire negatively
and one decoder row then represents both directions ``±W_dec[i]`` of a bidirectional feature
(the "AbsTopK" variant of TopK, cf. Gao et al. 2024's TopK with the ReLU dropped and the selection
made on ``|pre|``). L0 is exactly ``k`` per input (ties in ``|pre|`` are broken by ``torch.topk``),
and no sparsity penalty is needed.

Where this differs from :class:`~vtrep.sae.topk.TopKSAE`: there is no AuxK dead-latent loss here —
TopKSAE's dead counter and auxiliary codes assume non-negative codes (``codes > 0``, ReLU'd top-k),
which would miscount negatively firing latents. Gradients reach only the selected pre-activations
(as in TopK; the selection itself is not differentiated).
"""

from __future__ import annotations

import torch

from vtrep.sae.base import SparseAutoencoder


def abs_topk_codes(pre: torch.Tensor, k: int) -> torch.Tensor:
    """``(n, K)`` → codes keeping, per row, the ``k`` entries of largest ``|pre|`` (signed); the rest 0."""
    indices = pre.abs().topk(k, dim=-1, sorted=False).indices
    return torch.zeros_like(pre).scatter_(-1, indices, pre.gather(-1, indices))


class AbsTopKSAE(SparseAutoencoder):
    """Signed TopK sparse autoencoder (selection by magnitude, no ReLU).

    Args:
        d_in: input width.
        num_latents: dictionary size ``K``.
        k: active latents per input, an integer in ``[1, num_latents]``.
    """

    def __init__(self, d_in: int, num_latents: int, k: int = 32) -> None:
        super().__init__(d_in, num_latents)
        if isinstance(k, bool) or not isinstance(k, int) or not 0 < k <= num_latents:
            raise ValueError(f"k must be an integer in [1, num_latents={num_latents}], got {k!r}")
        self.k = k

    saelens_architecture = None  # signed codes: no SAELens architecture represents them

    def saelens_form(self) -> tuple[SparseAutoencoder, dict]:
        raise ValueError("AbsTopKSAE has signed codes, which no SAELens architecture represents")

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        return abs_topk_codes(pre, self.k)
