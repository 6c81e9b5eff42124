"""ATM: Adaptive Temporal Masking on a TopK SAE (Li & Ren, 2025, "Time-Aware Feature Selection: Adaptive
Temporal Masking for Stable Sparse Autoencoder Training", arXiv 2510.08855).

The paper's abstract (the only primary text used here) says: importance scores from activation
magnitude, firing frequency and reconstruction contribution, tracked over training, and probabilistic
masking by statistical thresholding of those scores. A secondary summary gives EMAs of the three, a
threshold ``θ = μ + c·σ`` over the importance scores and ``p(mask) = 1 − exp(−r(θ − I)/θ)`` for latents
below ``θ``. The details below are **this module's reading**, not the paper's code.

**Base activation.** ``codes₀ = ReLU(TopK_k(pre))`` as :class:`~vtrep.sae.topk.TopKSAE` (AuxK and its
dead-latent counters inherited, counted on ``codes₀``). :meth:`ATMSAE.activate` / :meth:`encode` are
always this deterministic TopK, in training and eval; masking exists only inside a training-mode
:meth:`ATMSAE.loss`, so eval, export (SAELens ``topk``) and inference are a plain TopK SAE.

**Statistics** (buffers, updated only by a training-mode :meth:`loss`, from the *unmasked* ``codes₀``
of the batch, ``x̃ = x/s − b_dec`` the centred scaled input, ``Wᵢ`` decoder row ``i``, ``n`` inputs):

- magnitude ``mᵢ``: EMA of ``(1/n) Σₙ codes₀[n, i]`` (zeros included);
- frequency ``fᵢ``: EMA of ``(1/n) Σₙ 1[codes₀[n, i] > 0]``;
- reconstruction contribution ``rᵢ``: EMA of ``Σₙ codes₀[n, i]·⟨Wᵢ, x̃ₙ⟩ / Σₙ ‖x̃ₙ‖²`` — latent ``i``'s share
  of the centred input energy its reconstruction explains (``Σᵢ`` of it is ``⟨x̂ − b_dec, x̃⟩ / ‖x̃‖²``).

Each EMA is ``s ← β·s + (1 − β)·batch`` with ``β = importance_momentum``; the first update copies the
batch value. Under DDP the batch sums (and ``n``, ``Σ‖x̃‖²``) are summed over ranks first
(:meth:`~vtrep.sae.base.SparseAutoencoder.rank_reduce`, installed by ``SAETask``), so every replica
holds the same statistics, thresholds and mask probabilities.

**Importance** ``Iᵢ = (mᵢ/m̄ + fᵢ/f̄ + max(rᵢ, 0)/r̄) / 3``: each statistic divided by its mean over the
latents (``x̄``, clamped ≥ 1e-12; ``r̄`` of the clamped values), so the three count equally and
``mean(I) = 1`` (until a statistic is all 0).

**Threshold and mask.** ``θ = μ + c·σ`` with ``μ``, ``σ`` the mean and population standard deviation of
``I`` over the ``K`` latents, ``c = threshold_std``. Latent ``i`` is masked with probability
``pᵢ = 1 − exp(−r·(θ − Iᵢ)/θ)`` if ``Iᵢ < θ``, else 0 (``r = mask_rate``, ``θ`` clamped ≥ 1e-12).
For the first ``max(warmup_steps, 1)`` statistic updates no latent is masked (``p = 0``). Each (input, latent) is masked
independently: ``codes = codes₀ · 1[u ≥ pᵢ]``, ``u ~ U[0, 1)``, so training L0 is below ``k`` by the
masked share. The ``p`` used by a step comes from the statistics *before* that step's update.
The masked codes reconstruct ``x̂`` for the MSE and AuxK's residual; a masked latent gets no gradient
from that input.

**Randomness.** ``u`` is drawn with ``torch.rand`` from the default generator of the input's device,
which ``seed_everything`` (``vtrep fit``'s ``seed_everything``) seeds: a fit is reproducible from its
seed; the generator's state is not part of the SAE's state dict. Under DDP each rank draws for its
own inputs.

No step reads a device value (the warm-up gate and every statistic are tensor operations). Only the
dense path is used (``sparse_path`` does not apply; see :mod:`vtrep.sae.topk`).
"""

from __future__ import annotations

import math

import torch

from vtrep.checks import non_negative_int
from vtrep.sae.base import SAEOutput
from vtrep.sae.topk import TopKSAE, topk_codes

STATISTICS = ("magnitude_ema", "frequency_ema", "contribution_ema")


def _number(name: str, value, low: float, high: float = math.inf, closed_high: bool = False) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) and value >= low \
        and (value <= high if closed_high else value < high)
    if not ok:
        raise ValueError(f"{name} must be a number in [{low}, {high}{']' if closed_high else ')'}, got {value!r}")
    return float(value)


def mask_probability(importance: torch.Tensor, threshold_std: float, mask_rate: float) -> torch.Tensor:
    """``(K,)`` importances → ``(K,)`` mask probabilities ``1 − exp(−r(θ − I)/θ)`` below ``θ = μ + c·σ``, else 0."""
    theta = (importance.mean() + threshold_std * importance.std(correction=0)).clamp_min(1e-12)
    gap = (theta - importance).clamp_min(0)
    return -torch.expm1(-mask_rate * gap / theta)


class ATMSAE(TopKSAE):
    """TopK SAE trained with Adaptive Temporal Masking (see the module docstring for the exact reading).

    Args:
        d_in: input width.
        num_latents: dictionary size ``K``.
        k: active latents per input of the base TopK (and at inference).
        importance_momentum: EMA momentum ``β`` of the three statistics, in ``[0, 1)``.
        threshold_std: ``c`` in ``θ = μ + c·σ`` (may be negative).
        mask_rate: ``r`` in ``1 − exp(−r(θ − I)/θ)`` (>= 0; 0 never masks).
        warmup_steps: statistic updates before any latent is masked (at least 1: no mask from empty statistics).
        aux_k, aux_coef, dead_after_tokens: AuxK settings, as :class:`~vtrep.sae.topk.TopKSAE`.
    """

    def __init__(self, d_in: int, num_latents: int, k: int = 32, importance_momentum: float = 0.99,
                 threshold_std: float = 1.0, mask_rate: float = 1.0, warmup_steps: int = 100,
                 aux_k: int | None = None, aux_coef: float = 1 / 32, dead_after_tokens: int = 10_000_000) -> None:
        super().__init__(d_in, num_latents, k=k, aux_k=aux_k, aux_coef=aux_coef, dead_after_tokens=dead_after_tokens)
        self.importance_momentum = _number("importance_momentum", importance_momentum, 0.0, 1.0)
        self.threshold_std = _number("threshold_std", threshold_std, -math.inf)
        self.mask_rate = _number("mask_rate", mask_rate, 0.0)
        non_negative_int("warmup_steps", warmup_steps)
        self.warmup_steps = warmup_steps
        for name in STATISTICS:
            self.register_buffer(name, torch.zeros(num_latents))
        self.register_buffer("importance_updates", torch.tensor(0, dtype=torch.long))

    saelens_loader = False  # exported as the TopK its inference is; a SAELens topk loads as TopKSAE

    # -- statistics ------------------------------------------------------------------------------------
    def importance(self) -> torch.Tensor:
        """``(K,)`` importance ``I`` from the current EMAs (module docstring)."""
        parts = [self.magnitude_ema, self.frequency_ema, self.contribution_ema.clamp_min(0)]
        return sum(p / p.mean().clamp_min(1e-12) for p in parts) / 3

    def mask_probabilities(self) -> torch.Tensor:
        """``(K,)`` probability that a step masks each latent: 0 during the warm-up."""
        p = mask_probability(self.importance(), self.threshold_std, self.mask_rate)
        return p * (self.importance_updates >= max(self.warmup_steps, 1)).to(p.dtype)

    @torch.no_grad()
    def update_statistics(self, x_centred: torch.Tensor, codes: torch.Tensor) -> None:
        """Fold one batch's (unmasked) codes into the three EMAs, summed over ranks under DDP."""
        n = torch.tensor([codes.shape[0]], dtype=codes.dtype, device=codes.device)
        energy = x_centred.pow(2).sum().reshape(1)
        contribution = (codes * (x_centred @ self.W_dec.t())).sum(0)
        sums = torch.cat([codes.sum(0), (codes > 0).to(codes.dtype).sum(0), contribution, n, energy])
        sums = self.rank_reduce(sums, "sum")
        K = self.num_latents
        count, energy = sums[3 * K].clamp_min(1), sums[3 * K + 1].clamp_min(1e-12)
        batch = (sums[:K] / count, sums[K:2 * K] / count, sums[2 * K:3 * K] / energy)
        first, beta = self.importance_updates == 0, self.importance_momentum
        for name, value in zip(STATISTICS, batch):
            ema = getattr(self, name)
            value = value.to(ema.dtype)
            ema.copy_(torch.where(first, value, beta * ema + (1 - beta) * value))
        self.importance_updates.add_(1)

    # -- loss ------------------------------------------------------------------------------------------
    def loss(self, x: torch.Tensor) -> SAEOutput:
        """MSE of the masked codes' reconstruction (training) or of the TopK codes (eval), plus AuxK."""
        x_scaled = self.scale_input(x)
        pre = self.pre_activation(x_scaled)
        base = topk_codes(pre, self.k)
        codes = base
        if self.training:
            p = self.mask_probabilities()
            keep = torch.rand(base.shape, device=base.device, dtype=base.dtype) >= p
            codes = base * keep.to(base.dtype)
            self.update_statistics(x_scaled.detach() - self.b_dec.detach(), base.detach())
        x_hat = self.decode_scaled(codes)
        parts = {"mse": (x_hat - x_scaled).pow(2).mean(), **self.sparsity_loss(x_scaled, pre, base, x_hat)}
        return SAEOutput(sum(parts.values()), codes, x_hat, parts)
