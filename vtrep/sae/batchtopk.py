"""BatchTopK SAE (Bussmann, Leask & Nanda, 2024, "BatchTopK Sparse Autoencoders").

Training: over the whole batch of ``n`` inputs, keep the ``k·n`` largest entries of ``ReLU(pre)``
(flattened over inputs × latents) and zero the rest, so ``k`` is the *average* number of active
latents per input and busy inputs may use more than ``k``.

Inference: a batch-level top-k would make one input's codes depend on the other inputs in its batch,
so in eval mode a fixed scalar threshold ``θ`` is used instead: ``codes = pre · 1[pre > θ]``. ``θ``
(the ``threshold`` buffer) estimates the smallest activation that BatchTopK keeps. The paper
estimates it as the average minimum positive kept activation over a number of batches; here it is an
exponential moving average updated on every training-mode :meth:`loss` call,
``θ ← m·θ + (1 − m)·min_kept`` with ``m = threshold_momentum``, where ``min_kept`` is the smallest
positive kept activation of the batch; the first update copies ``min_kept`` (no bias towards the
initial 0). Until a first update, ``θ = 0`` and eval codes are ``ReLU(pre)`` (dense).

Under DDP the batch-level top-k runs over each rank's own batch (``k·n`` of its ``n`` inputs), as one
device of that size would; the threshold EMA takes the smallest kept activation over all ranks
(:meth:`~vtrep.sae.base.SparseAutoencoder.rank_reduce` with ``"min"``), so every replica holds the same ``θ``.

Because eval mode is a JumpReLU with one threshold for every latent, :meth:`BatchTopKSAE.to_jumprelu`
exports an equivalent :class:`~vtrep.sae.jumprelu.JumpReLUSAE`.

Like the paper, the AuxK dead-latent loss of Gao et al. (2024) is kept: this class extends
:class:`~vtrep.sae.topk.TopKSAE` and only changes the activation (same AuxK arguments and defaults).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from vtrep.sae.jumprelu import JumpReLUSAE
from vtrep.sae.topk import TopKSAE


def batch_topk_codes(pre: torch.Tensor, k: int) -> torch.Tensor:
    """``(n, K)`` → codes keeping the ``k·n`` largest entries of ``ReLU(pre)`` over the whole batch."""
    flat = pre.relu().flatten()
    keep = min(k * pre.shape[:-1].numel(), flat.numel())
    values, indices = flat.topk(keep, sorted=False)
    return torch.zeros_like(flat).scatter(0, indices, values).view_as(pre)


class BatchTopKSAE(TopKSAE):
    """BatchTopK sparse autoencoder with a fixed inference threshold.

    Args:
        d_in: input width.
        num_latents: dictionary size ``K``.
        k: average active latents per input in training.
        threshold_momentum: EMA momentum ``m`` of the inference threshold, in ``[0, 1)``.
        aux_k, aux_coef, dead_after_tokens: AuxK settings, as in :class:`~vtrep.sae.topk.TopKSAE`.
    """

    def __init__(self, d_in: int, num_latents: int, k: int = 32, threshold_momentum: float = 0.99,
                 aux_k: int | None = None, aux_coef: float = 1 / 32,
                 dead_after_tokens: int = 10_000_000) -> None:
        if isinstance(k, bool):
            raise ValueError(f"k must be an integer in [1, num_latents={num_latents}], got {k!r}")
        super().__init__(d_in, num_latents, k=k, aux_k=aux_k, aux_coef=aux_coef,
                         dead_after_tokens=dead_after_tokens)
        if isinstance(threshold_momentum, bool) or not isinstance(threshold_momentum, (int, float)) \
                or not 0.0 <= threshold_momentum < 1.0:
            raise ValueError(f"threshold_momentum must be a number in [0, 1), got {threshold_momentum!r}")
        self.threshold_momentum = float(threshold_momentum)
        self.register_buffer("threshold", torch.tensor(0.0))
        self.register_buffer("threshold_updates", torch.tensor(0, dtype=torch.long))

    saelens_architecture = "jumprelu"  # exported as the JumpReLU its inference is
    saelens_loader = False  # a SAELens jumprelu loads as JumpReLUSAE

    def saelens_form(self) -> tuple[JumpReLUSAE, dict]:
        return self.to_jumprelu(), {}

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        if self.training:
            return batch_topk_codes(pre, self.k)
        return pre * (pre > self.threshold).to(pre.dtype)

    @torch.no_grad()
    def update_threshold(self, codes: torch.Tensor) -> None:
        """Fold the smallest positive entry of training ``codes`` into the EMA (no-op when none is positive).

        Under DDP (:meth:`rank_reduce` installed by ``SAETask``) the smallest kept activation of every rank's
        batch is used, so all replicas hold the same threshold. Every rank takes part in that collective even
        without a positive entry (it offers +inf).
        """
        # tensor ops only (no boolean-mask indexing, no float()): a training step reads no device value
        if codes.numel():
            smallest = torch.where(codes > 0, codes, math.inf).amin().to(self.threshold.dtype)
        else:
            smallest = torch.full_like(self.threshold, math.inf)
        smallest = self.rank_reduce(smallest, "min")
        seen = torch.isfinite(smallest)
        ema = self.threshold_momentum * self.threshold + (1.0 - self.threshold_momentum) * smallest
        updated = torch.where(self.threshold_updates == 0, smallest, ema)
        self.threshold.copy_(torch.where(seen, updated, self.threshold))
        self.threshold_updates.add_(seen.long())

    def sparsity_loss(self, x_scaled, pre, codes, x_hat) -> dict[str, torch.Tensor]:
        if self.training:
            self.update_threshold(codes)
        return super().sparsity_loss(x_scaled, pre, codes, x_hat)

    @torch.no_grad()
    def to_jumprelu(self, **kwargs: Any) -> JumpReLUSAE:
        """A :class:`JumpReLUSAE` with these weights, ``input_scale`` and ``θ_i = threshold`` for every
        latent, whose outputs equal this model's eval-mode outputs (up to ``exp(log θ)`` rounding).
        ``kwargs`` go to the JumpReLU constructor (``bandwidth``, ``l0_coef``, ...), e.g. to fine-tune it.
        """
        threshold = float(self.threshold)
        if int(self.threshold_updates) == 0 or not math.isfinite(threshold) or threshold <= 0:
            raise ValueError("threshold is not calibrated (> 0) yet: run training-mode loss() steps first")
        model = JumpReLUSAE.from_weights(self.W_enc, self.b_enc, self.W_dec, self.b_dec,
                                         threshold=self.threshold, input_scale=self.input_scale, **kwargs)
        return model.train(self.training)
