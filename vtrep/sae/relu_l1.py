"""ReLU SAE with a decoder-norm-weighted L1 penalty (Anthropic, "Circuits Updates — April 2024").

``codes = ReLU(pre)``; the sparsity term is ``l1_coef · mean_n Σ_i codes_i · ‖W_dec[i]‖₂``.

Formulation followed: Anthropic's April-2024 update, in which the L1 penalty multiplies each code by
its decoder row's norm (so shrinking codes while growing decoder rows buys nothing) and decoder rows
are otherwise unconstrained. Towards Monosemanticity (2023) instead penalised ``Σ_i codes_i`` with
decoder rows pinned to unit norm; with the base class's unit rows (:meth:`normalise_decoder`) both
penalties coincide, and the weighting matters once rows are not unit — after
:meth:`fold_input_scale` (rows of norm ``s``) or when a training loop skips the normalisation.

Coefficient scale: Anthropic's reconstruction term is the squared error *summed* over ``d`` (mean
over inputs) with ``λ ≈ 5`` on inputs normalised to ``E‖x‖² = d``. The base class's MSE is the mean
over ``n·d`` entries, i.e. theirs divided by ``d``, so the same objective (up to the factor ``1/d``)
has ``l1_coef = λ / d``. The default, ``l1_coef=None``, resolves to ``5 / d_in``; pass a float to
set it directly (``config`` stores the resolved value).
"""

from __future__ import annotations

import math

import torch

from vtrep.sae.base import SparseAutoencoder

ANTHROPIC_LAMBDA = 5.0  # λ of the April-2024 update, for a reconstruction error summed over d


class ReLUL1SAE(SparseAutoencoder):
    """ReLU sparse autoencoder with the decoder-norm-weighted L1 penalty.

    Args:
        d_in: input width.
        num_latents: dictionary size ``K``.
        l1_coef: weight of the L1 term, finite and ``>= 0``; ``None`` (default) means ``5 / d_in``.
    """

    def __init__(self, d_in: int, num_latents: int, l1_coef: float | None = None) -> None:
        super().__init__(d_in, num_latents)
        if l1_coef is None:
            l1_coef = ANTHROPIC_LAMBDA / d_in
        if isinstance(l1_coef, bool) or not isinstance(l1_coef, (int, float)) \
                or not math.isfinite(l1_coef) or l1_coef < 0:
            raise ValueError(f"l1_coef must be a finite number >= 0 (or None), got {l1_coef!r}")
        self.l1_coef = float(l1_coef)
        self.resolve_init_args(l1_coef=self.l1_coef)

    saelens_architecture = "standard"
    saelens_loader = True

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        return pre.relu()

    def sparsity_loss(self, x_scaled, pre, codes, x_hat) -> dict[str, torch.Tensor]:
        weighted = codes * self.W_dec.norm(dim=1)  # (n, K): f_i · ‖W_dec[i]‖
        return {"l1": self.l1_coef * weighted.sum(dim=1).mean()}
