"""Matryoshka SAE: nested dictionaries whose prefixes must each reconstruct the input.

Bussmann, Nabeshima, Karvonen & Nanda (2025), "Learning Multi-Level Features with Matryoshka Sparse
Autoencoders"; Nabeshima (2024), "Matryoshka Sparse Autoencoders". For nested widths
``m₁ < m₂ < … < m_P = K`` (``prefixes``), prefix ``m`` reconstructs from latents ``[0, m)`` only::

    x̂_m = codes[:, :m] W_dec[:m] + b_dec,      mse_m = mean over n·d of (x̂_m − x/s)²

so early latents are pushed towards general features that suffice on their own and later ones
refine them.

Formulation followed, where the sources differ:

- Codes are per-input TopK (``codes = ReLU(TopK_k(pre))``, as :class:`~vtrep.sae.topk.TopKSAE`,
  whose AuxK dead-latent loss is inherited), not Bussmann et al.'s BatchTopK (which needs a
  threshold for inference) nor Nabeshima's ReLU + L1. Codes are computed once for the whole
  dictionary and truncated per prefix.
- The reconstruction term is the **mean** over the ``P`` prefixes (Bussmann et al. sum them); the
  mean keeps the scale of a single MSE, so coefficients tuned on other variants carry over.
  The full width ``K`` is one of the ``P`` prefixes and counts exactly once.
- ``prefixes`` are fixed (no per-batch random sampling of widths).

``loss`` therefore is ``mean_m mse_m (+ auxk)``. ``parts`` holds the *unweighted* terms:
``"mse"`` is the full-dictionary MSE (``mse_K``, the same quantity as every other variant's
``"mse"``), ``"mse_prefix_<m>"`` each strict prefix ``m < K``, and ``"auxk"`` when AuxK is active —
so unlike the base class, ``loss`` is ``(Σ mse terms) / P + auxk`` rather than the plain sum of parts.

``prefixes`` must be non-empty, strictly increasing positive integers ``<= num_latents``; if the last
is below ``num_latents`` the full width is appended (``config`` stores the completed list). The
default is the halving ladder ``K/16, K/8, K/4, K/2, K`` (widths below 1 dropped).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from vtrep.sae.base import SAEOutput
from vtrep.sae.topk import TopKSAE


def default_prefixes(num_latents: int) -> list[int]:
    """``K/16, K/8, K/4, K/2, K`` (integer division), without widths below 1 or repeats."""
    return sorted({num_latents >> j for j in range(5)} - {0})


class MatryoshkaSAE(TopKSAE):
    """TopK SAE trained with the nested-prefix (Matryoshka) reconstruction loss.

    Args:
        d_in: input width.
        num_latents: dictionary size ``K``.
        k: active latents per input (over the whole dictionary).
        prefixes: nested widths, strictly increasing, each in ``[1, num_latents]``; ``num_latents``
            is appended if missing. ``None`` means :func:`default_prefixes`.
        aux_k, aux_coef, dead_after_tokens: AuxK settings, as :class:`~vtrep.sae.topk.TopKSAE`.
    """

    def __init__(self, d_in: int, num_latents: int, k: int = 32, prefixes: Sequence[int] | None = None,
                 aux_k: int | None = None, aux_coef: float = 1 / 32,
                 dead_after_tokens: int = 10_000_000) -> None:
        super().__init__(d_in, num_latents, k=k, aux_k=aux_k, aux_coef=aux_coef,
                         dead_after_tokens=dead_after_tokens)
        self.prefixes = self._check_prefixes(default_prefixes(num_latents) if prefixes is None else prefixes)
        self.resolve_init_args(prefixes=self.prefixes)

    def _check_prefixes(self, prefixes: Sequence[int]) -> tuple[int, ...]:
        if isinstance(prefixes, (str, bytes)) or not isinstance(prefixes, Sequence):
            raise ValueError(f"prefixes must be a sequence of integers, got {prefixes!r}")
        widths = list(prefixes)
        if not widths:
            raise ValueError("prefixes must be non-empty")
        for m in widths:
            if isinstance(m, bool) or not isinstance(m, int) or not 0 < m <= self.num_latents:
                raise ValueError(f"prefixes must hold integers in [1, num_latents={self.num_latents}], "
                                 f"got {prefixes!r}")
        if any(a >= b for a, b in zip(widths, widths[1:])):
            raise ValueError(f"prefixes must be strictly increasing, got {prefixes!r}")
        if widths[-1] != self.num_latents:
            widths.append(self.num_latents)
        return tuple(widths)

    def prefix_reconstructions(self, codes: torch.Tensor) -> list[torch.Tensor]:
        """``x̂_m`` (scaled space) for every ``m`` in ``prefixes``, built incrementally (one decode in all)."""
        out, x_hat, start = [], self.b_dec.expand(codes.shape[0], -1), 0
        for m in self.prefixes:
            x_hat = torch.addmm(x_hat, codes[:, start:m], self.W_dec[start:m])
            out.append(x_hat)
            start = m
        return out

    def loss(self, x: torch.Tensor) -> SAEOutput:
        """Mean over prefixes of the prefix MSE, plus AuxK when dead latents exist (see module docstring)."""
        x_scaled = self.scale_input(x)
        pre = self.pre_activation(x_scaled)
        codes = self.activate(pre)
        recs = self.prefix_reconstructions(codes)
        mses = [(x_hat - x_scaled).pow(2).mean() for x_hat in recs]
        x_hat = recs[-1]
        parts = {"mse": mses[-1]}
        parts.update({f"mse_prefix_{m}": mse for m, mse in zip(self.prefixes[:-1], mses[:-1])})
        extra = self.sparsity_loss(x_scaled, pre, codes, x_hat)
        parts.update(extra)
        total = torch.stack(mses).mean()
        for term in extra.values():
            total = total + term
        return SAEOutput(total, codes, x_hat, parts)
