"""TopK SAE with the AuxK dead-latent loss (Gao et al., 2024, "Scaling and evaluating sparse autoencoders").

``codes = ReLU(TopK_k(pre))``: only the ``k`` largest pre-activations per input survive, so L0 ≤ k by
construction and no sparsity penalty is needed.

AuxK (their appendix A.2): latents that have not fired for ``dead_after_tokens`` inputs are *dead*;
the ``aux_k`` largest pre-activations among dead latents reconstruct the **detached** residual
``e = x − x̂`` through the decoder (no bias). The term is the residual's FVU,
``Σ(ê − e)² / Σ(e − ē)²`` (sparsify's normalisation; OpenAI normalise by the residual's MSE, the
same up to the mean), weighted by ``aux_coef`` (1/32). Defaults follow OpenAI / sparsify:
``aux_k = d_in / 2``, dead after 10M tokens (SAELens uses 1000 steps; pass a smaller count for
short runs). The dead counter advances only in training mode.
"""

from __future__ import annotations

from typing import Any

import torch

from vtrep.sae.base import SparseAutoencoder


def topk_codes(pre: torch.Tensor, k: int) -> torch.Tensor:
    """``(n, K)`` → codes with the ``k`` largest entries per row kept (ReLU'd), the rest 0."""
    values, indices = pre.topk(k, dim=-1, sorted=False)
    return torch.zeros_like(pre).scatter_(-1, indices, values.relu())


class TopKSAE(SparseAutoencoder):
    """TopK sparse autoencoder.

    Args:
        d_in: input width.
        num_latents: dictionary size ``K``.
        k: active latents per input.
        aux_k: dead latents used by AuxK (default ``d_in // 2``); 0 disables AuxK.
        aux_coef: AuxK weight (1/32).
        dead_after_tokens: inputs without firing after which a latent counts as dead.
    """

    def __init__(self, d_in: int, num_latents: int, k: int = 32, aux_k: int | None = None,
                 aux_coef: float = 1 / 32, dead_after_tokens: int = 10_000_000) -> None:
        super().__init__(d_in, num_latents)
        if not isinstance(k, int) or not 0 < k <= num_latents:
            raise ValueError(f"k must be an integer in [1, num_latents={num_latents}], got {k!r}")
        self.k = k
        self.aux_k = d_in // 2 if aux_k is None else aux_k
        if self.aux_k < 0:
            raise ValueError(f"aux_k must be >= 0, got {aux_k}")
        self.aux_coef, self.dead_after_tokens = aux_coef, dead_after_tokens
        self.register_buffer("tokens_since_fired", torch.zeros(num_latents, dtype=torch.long))

    @property
    def config(self) -> dict[str, Any]:
        return {**super().config, "k": self.k, "aux_k": self.aux_k, "aux_coef": self.aux_coef,
                "dead_after_tokens": self.dead_after_tokens}

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        return topk_codes(pre, self.k)

    @property
    def dead(self) -> torch.Tensor:
        """``(K,)`` bool: latents silent for at least ``dead_after_tokens`` inputs."""
        return self.tokens_since_fired >= self.dead_after_tokens

    @torch.no_grad()
    def update_firing(self, codes: torch.Tensor) -> None:
        self.tokens_since_fired += codes.shape[0]
        self.tokens_since_fired[(codes > 0).any(dim=0)] = 0

    def sparsity_loss(self, x_scaled, pre, codes, x_hat) -> dict[str, torch.Tensor]:
        if self.training:
            self.update_firing(codes)
        dead = self.dead
        if self.aux_k == 0 or not bool(dead.any()):
            return {}
        return {"auxk": self.aux_coef * self.auxk_loss(x_scaled, pre, x_hat, dead)}

    def auxk_loss(self, x_scaled, pre, x_hat, dead) -> torch.Tensor:
        """FVU of the detached residual reconstructed from the top ``aux_k`` dead latents."""
        residual = (x_scaled - x_hat).detach()
        k_aux = min(self.aux_k, int(dead.sum()))
        aux_codes = topk_codes(pre.masked_fill(~dead, float("-inf")), k_aux)
        residual_hat = aux_codes @ self.W_dec
        variance = (residual - residual.mean(dim=0)).pow(2).sum().clamp_min(1e-12)
        return (residual_hat - residual).pow(2).sum() / variance
