"""Relaxed Archetypal SAE (RA-SAE): dictionary atoms anchored in the convex hull of the data.

Fel, Lubana, Prince, Kowal, Boutin, Papadimitriou, Wang, Wattenberg, Ba & Konkle (2025),
"Archetypal SAE: Adaptive and Stable Dictionary Learning for Concept Extraction in Large Vision
Models" (ICML 2025, arXiv:2502.12892), as implemented in the authors' library *overcomplete*
(``RelaxedArchetypalDictionary``, ``RATopKSAE``). The decoder is not a free matrix but::

    W_dec = D = (W C + Λ) · exp(m)

- ``C (n_c, d)``: fixed candidate points from the data (the ``candidates`` buffer): k-means centroids,
  as the paper recommends (the reference also accepts any points, e.g. sampled activations);
- ``W (K, n_c)``: row-stochastic (non-negative, rows sum to 1), so ``W C`` lies in ``conv(C)``;
- ``Λ (K, d)``: the *relaxation*, each row's norm bounded, ``‖Λ_i‖ ≤ δ`` (``delta``; ``delta = 0``
  is the unrelaxed A-SAE);
- ``m``: a learnable scalar (``use_multiplier``) that lets the whole dictionary scale (atoms then lie in
  the cone, not only the hull, of the candidates).

The encoder is :class:`~vtrep.sae.topk.TopKSAE`'s (``codes = ReLU(TopK_k(pre))``, AuxK kept): the
paper combines the archetypal dictionary with existing encoders (TopK and JumpReLU in overcomplete).
As in the reference, the constraints are kept by projection rather than by a penalty:
``W ← ReLU(W)`` with rows renormalised to sum 1, and ``Λ_i ← Λ_i · min(1, δ/‖Λ_i‖)``. The reference
projects at the start of every training-mode dictionary read; here :meth:`normalise_decoder` does it
after each optimiser step (``SAETask`` and the benchmark call it there), so every forward sees the
same projected parameters. ``W_dec`` is a property computing ``D``, so every reader of ``sae.W_dec``
(metrics, :func:`~vtrep.sae.metrics.dictionary_recovery`, export) sees the effective dictionary; at
inference the model is a plain TopK SAE with decoder ``D`` and exports to SAELens as ``topk``.

Where this deviates from the reference, and why:

- ``C`` holds k-means centroids of ``x/s − b_dec`` (scaled, centred by the decoder bias at the time
  :meth:`init_candidates` runs), not of the raw activations: overcomplete's SAE has no decoder bias,
  so its atoms reconstruct ``x`` itself, while here ``x̂ = codes·D + b_dec`` and the atoms reconstruct
  ``x − b_dec``; anchoring them in the raw hull would count the data's centre twice.
  With ``b_dec = 0`` (``decoder_bias_init="none"``) it is the paper's hull of the (scaled) data.
- ``C``, ``Λ`` and ``δ`` live in the scaled space (``E‖x/s‖² = d``), so ``δ`` is relative to the input
  scale ``s`` (the reference's ``δ``, default 1 as here, is in raw activation units).
- Initialisation: atom ``i`` starts at one distinct candidate (``W`` one-hot, the first ``K`` in
  k-means++ order, which is spread over the data); when ``K > n_c`` the extra atoms start at random
  mixtures of two candidates (the reference's ``W = eye(K, n_c)`` would leave them at zero).
  ``Λ = 0`` and ``m = 0`` as in the reference. The encoder is tied to the initial dictionary as
  ``W_enc[:, i] = D_i / ‖D_i‖²`` (for unit rows this is the base class's ``W_decᵀ``).
- A row of ``W`` with no positive entry after a step would become the zero atom under ReLU +
  renormalisation; it is reset to the vertex (one-hot) of its largest entry instead.
- :meth:`fold_input_scale` adds ``log s`` to ``m`` instead of scaling ``C`` and ``Λ``, so the bound ``δ``
  keeps its meaning if training resumes from a folded model.
- k-means (k-means++ seeding, Lloyd iterations) runs on the sample given to :meth:`init_candidates`
  (with ``SAETask``, its first training batch: see :meth:`init_from_data`), not on the whole
  training set.

Cost: ``D`` is formed each time ``W_dec`` is read (``O(K·n_c·d)``; twice per step when AuxK is
active), so TopK's sparse fast path is not used (``sparse_path`` is not in ``config``).

Encoding or decoding before the candidates are set raises (``RuntimeError`` naming
:meth:`init_candidates`); under Lightning this includes the sanity-check validation that runs before
``SAETask``'s first training batch, so train with ``num_sanity_val_steps=0``.
"""

from __future__ import annotations

import torch
from torch import nn

from vtrep.checks import non_negative, non_negative_int, positive_int
from vtrep.sae.topk import TopKSAE

_CHUNK_ENTRIES = 1 << 24  # distance-matrix entries per chunk in k-means (64 MiB in float32)


@torch.no_grad()
def nearest_centroid(x: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """``x (n, d)``, ``centres (c, d)`` → index ``(n,)`` of each row's nearest centre (chunked over ``n``)."""
    rows = max(1, _CHUNK_ENTRIES // max(1, centres.shape[0]))
    centre_sq = centres.pow(2).sum(dim=1)
    out = [torch.addmm(centre_sq, chunk, centres.t(), alpha=-2.0).argmin(dim=1) for chunk in x.split(rows)]
    return torch.cat(out)


@torch.no_grad()
def kmeans_plus_plus(x: torch.Tensor, n_centres: int) -> torch.Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii, 2007): each next seed is drawn with probability
    ∝ squared distance to the nearest seed so far. Uses torch's global RNG. ``(n, d)`` → ``(n_centres, d)``."""
    n = x.shape[0]
    centres = x.new_empty(n_centres, x.shape[1])
    centres[0] = x[int(torch.randint(n, (1,)))]
    dist = (x - centres[0]).pow(2).sum(dim=1)
    for j in range(1, n_centres):
        # once every point coincides with a seed, fall back to uniform draws (duplicates are then unavoidable)
        weights = dist if float(dist.sum()) > 0 else torch.ones_like(dist)
        centres[j] = x[int(torch.multinomial(weights, 1))]
        dist = torch.minimum(dist, (x - centres[j]).pow(2).sum(dim=1))
    return centres


@torch.no_grad()
def kmeans(x: torch.Tensor, n_centres: int, iterations: int = 10) -> torch.Tensor:
    """Lloyd's algorithm from k-means++ seeds; an empty cluster keeps its previous centre.
    ``x (n, d)`` → centres ``(n_centres, d)`` in seeding order."""
    centres = kmeans_plus_plus(x, n_centres)
    for _ in range(iterations):
        assign = nearest_centroid(x, centres)
        sums = torch.zeros_like(centres).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=n_centres)
        filled = counts > 0
        updated = torch.where(filled[:, None], sums / counts.clamp_min(1)[:, None].to(x.dtype), centres)
        if torch.equal(updated, centres):
            break
        centres = updated
    return centres


class ArchetypalSAE(TopKSAE):
    """Relaxed Archetypal TopK SAE (see the module docstring for the formulation and deviations).

    The candidates ``C`` come from data, not from the constructor: call :meth:`init_candidates` on a
    sample of raw inputs (``SAETask`` does so through :meth:`init_from_data` on its first batch)
    before encoding or decoding.

    Args:
        d_in: input width ``d``.
        num_latents: dictionary size ``K``.
        k: active latents per input.
        n_candidates: number of candidate points ``n_c`` (k-means centroids); the sample given to
            :meth:`init_candidates` needs at least this many rows.
        delta: bound ``δ >= 0`` on each relaxation row's norm (scaled input space); 0 gives the A-SAE.
        use_multiplier: learn the dictionary's scalar log-multiplier ``m`` (else ``m`` is a buffer, 0
            until :meth:`fold_input_scale`).
        aux_k, aux_coef, dead_after_tokens: AuxK settings, as :class:`~vtrep.sae.topk.TopKSAE`.
    """

    def __init__(self, d_in: int, num_latents: int, k: int = 32, n_candidates: int = 1024, delta: float = 1.0,
                 use_multiplier: bool = True, aux_k: int | None = None, aux_coef: float = 1 / 32,
                 dead_after_tokens: int = 10_000_000) -> None:
        if isinstance(k, bool):
            raise ValueError(f"k must be an integer in [1, num_latents={num_latents}], got {k!r}")
        super().__init__(d_in, num_latents, k=k, aux_k=aux_k, aux_coef=aux_coef,
                         dead_after_tokens=dead_after_tokens)
        positive_int("n_candidates", n_candidates)
        non_negative("delta", delta)
        if not isinstance(use_multiplier, bool):
            raise ValueError(f"use_multiplier must be True or False, got {use_multiplier!r}")
        self.n_candidates, self.delta, self.use_multiplier = n_candidates, float(delta), use_multiplier
        # the base class made W_dec a free parameter; here it is derived from W, C, Λ and m (the property)
        del self._parameters["W_dec"]
        self.register_buffer("candidates", torch.zeros(n_candidates, d_in))
        self.register_buffer("candidates_fitted", torch.tensor(False))
        self.archetype_weights = nn.Parameter(torch.zeros(num_latents, n_candidates))
        self.relaxation = nn.Parameter(torch.zeros(num_latents, d_in))
        if use_multiplier:
            self.log_multiplier = nn.Parameter(torch.tensor(0.0))
        else:
            self.register_buffer("log_multiplier", torch.tensor(0.0))

    @classmethod
    def _sparse_path_supported(cls) -> bool:
        return False  # the sparse decode would still need the dense D = (W C + Λ)·e^m every step

    # -- the dictionary ------------------------------------------------------------------------------
    @property
    def W_dec(self) -> torch.Tensor:
        """The effective dictionary ``D = (W C + Λ)·exp(m)``, ``(K, d)``, differentiable in ``W, Λ, m``."""
        if "W_dec" in self._parameters:  # only inside the base constructor, before __init__ removes it
            return self._parameters["W_dec"]
        self._require_candidates()
        return torch.addmm(self.relaxation, self.archetype_weights, self.candidates) * self.log_multiplier.exp()

    def _require_candidates(self) -> None:
        if not bool(self.candidates_fitted):
            raise RuntimeError(f"{type(self).__name__} has no candidate points yet: call init_candidates(x) on a "
                               "sample of inputs first (SAETask does it via init_from_data on its first batch)")

    def pre_activation(self, x_scaled: torch.Tensor) -> torch.Tensor:
        self._require_candidates()  # the encoder is tied to the dictionary at init_candidates
        return super().pre_activation(x_scaled)

    # -- constraints ---------------------------------------------------------------------------------
    @torch.no_grad()
    def normalise_decoder(self) -> None:
        """Project back onto the constraint set: ``W`` row-stochastic (ReLU, then rows divided by their
        sums; a row with no positive entry becomes the one-hot of its largest entry) and every
        ``‖Λ_i‖ ≤ δ`` (rows rescaled). Call after each optimiser step."""
        w = self.archetype_weights
        vertex = w.argmax(dim=1)
        w.clamp_(min=0)
        sums = w.sum(dim=1, keepdim=True)
        empty = sums[:, 0] <= 0
        w.div_(sums.clamp_min(torch.finfo(w.dtype).tiny))
        if bool(empty.any()):
            rows = empty.nonzero().squeeze(1)
            w[rows] = 0
            w[rows, vertex[rows]] = 1
        norms = self.relaxation.norm(dim=1, keepdim=True)
        self.relaxation.mul_((self.delta / norms.clamp_min(torch.finfo(norms.dtype).tiny)).clamp(max=1.0))

    @torch.no_grad()
    def remove_parallel_gradient(self) -> None:
        """Nothing to remove: unlike the base class's unit-norm rows, the atoms' geometry is kept by the
        projection in :meth:`normalise_decoder` (as in the reference, which does not alter gradients)."""

    # -- data-dependent initialisation ----------------------------------------------------------------
    @torch.no_grad()
    def init_candidates(self, x: torch.Tensor, iterations: int = 10) -> None:
        """Set ``C`` to the k-means centroids of ``x/s − b_dec`` (raw inputs ``x (n, d)``, ``n >= n_candidates``)
        and (re)initialise ``W``, ``Λ``, ``m`` and the tied encoder (module docstring). Deterministic given
        torch's seed. Call after :meth:`fit_input_scale` / ``init_decoder_bias`` when those are used."""
        self._check_width(x)
        if x.shape[0] < self.n_candidates:
            raise ValueError(f"init_candidates needs at least n_candidates={self.n_candidates} inputs, got "
                             f"{x.shape[0]}: pass a larger sample or lower n_candidates")
        non_negative_int("iterations", iterations)
        points = (self.scale_input(x) - self.b_dec).to(self.candidates.dtype)
        self.candidates.copy_(kmeans(points, self.n_candidates, iterations))
        self.archetype_weights.copy_(self.initial_weights())
        self.relaxation.zero_()
        self.log_multiplier.zero_()
        self.candidates_fitted.fill_(True)
        atoms = self.W_dec
        self.W_enc.copy_((atoms / atoms.pow(2).sum(dim=1, keepdim=True).clamp_min(1e-12)).t())

    def initial_weights(self) -> torch.Tensor:
        """``W (K, n_c)``: row ``i < n_c`` one-hot on candidate ``i``; rows beyond ``n_c`` mix two distinct
        random candidates with a uniform random weight (one candidate when ``n_c = 1``)."""
        K, n_c = self.num_latents, self.n_candidates
        weights = torch.zeros(K, n_c, dtype=self.archetype_weights.dtype, device=self.candidates.device)
        first = min(K, n_c)
        diagonal = torch.arange(first, device=weights.device)
        weights[diagonal, diagonal] = 1.0
        extra = K - first
        if extra > 0:
            a = torch.randint(n_c, (extra,), device=weights.device)
            b = (a + torch.randint(1, max(n_c, 2), (extra,), device=weights.device)) % n_c
            t = torch.rand(extra, dtype=weights.dtype, device=weights.device)
            rows = torch.arange(first, K, device=weights.device)
            weights[rows, a] += 1 - t
            weights[rows, b] += t
        return weights

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor) -> None:
        """:meth:`init_candidates` on ``x`` unless candidates are set: the data-dependent hook ``SAETask`` calls
        on its first batch, after the input scale and ``b_dec`` are fitted."""
        if not bool(self.candidates_fitted):
            self.init_candidates(x)

    @torch.no_grad()
    def fold_input_scale(self) -> None:
        """Move ``s`` into the weights: ``W_enc/s``, ``m + log s`` (so ``D·s``), ``s·b_dec``; outputs unchanged."""
        scale = self.input_scale.clone()
        self.W_enc.div_(scale)
        self.log_multiplier.add_(scale.log().to(self.log_multiplier.dtype))
        self.b_dec.mul_(scale)
        self.input_scale.fill_(1.0)
