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

No step reads a device value (no host synchronisation): AuxK always takes the top
``min(aux_k, K)`` of the pre-activations with live latents at ``-inf`` — those picks ReLU to 0, so the
codes equal the top ``min(aux_k, #dead)`` dead ones — and the term is multiplied by ``any(dead)``.
Whether it is computed at all is decided on the host from a Python upper bound on the counters
(:meth:`TopKSAE.may_have_dead`), so ``parts`` has ``"auxk"`` only once some latent can be dead.

Sparse fast path (``sparse_path``; :mod:`vtrep.sae.sparse_ops`): :meth:`TopKSAE.loss` can encode with
:class:`~vtrep.sae.sparse_ops.TopKEncode` (dense forward ``addmm`` + top-k, backward over the ``k``
active latents only) and decode with :func:`~vtrep.sae.sparse_ops.sparse_decode` (``embedding_bag``),
so two of a step's three ``O(n·K·d)`` matmuls and the dense decode become ``O(n·k·d)``. The loss, its
parts, ``x_hat`` and every gradient equal the dense path's (up to float summation order); ``codes``
is still the dense ``(n, K)`` tensor (a scatter of the active values, differentiable through them).
AuxK on this path picks the dead latents from the dense pre-activations computed once (no grad) by
the encode and attaches the gradient of the ``aux_k`` picked ones through
:class:`~vtrep.sae.sparse_ops.GatheredLinear`, so it too is exact and sparse in the backward.
``sparse_path=None`` (default) turns it on when ``num_latents >= 8·k``. Only :class:`TopKSAE` itself
uses it: subclasses that override :meth:`activate`, :meth:`loss` or :meth:`sparsity_loss`
(BatchTopK, Matryoshka) always take the dense path and ``sparse_path`` is not in their ``config``.
"""

from __future__ import annotations

import torch

from vtrep.sae.base import SAEOutput, SparseAutoencoder
from vtrep.sae.sparse_ops import gathered_linear, sparse_decode, topk_encode
from vtrep.tensor_identity import same_tensor, tensor_key


def topk_codes(pre: torch.Tensor, k: int) -> torch.Tensor:
    """``(n, K)`` → codes with the ``k`` largest entries per row kept (ReLU'd), the rest 0."""
    values, indices = pre.topk(k, dim=-1, sorted=False)
    return torch.zeros_like(pre).scatter_(-1, indices, values.relu())


def residual_fvu(residual_hat: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """AuxK's term: ``Σ(ê − e)² / Σ(e − ē)²`` for the detached residual ``e``."""
    variance = (residual - residual.mean(dim=0)).pow(2).sum().clamp_min(1e-12)
    return (residual_hat - residual).pow(2).sum() / variance


class TopKSAE(SparseAutoencoder):
    """TopK sparse autoencoder.

    Args:
        d_in: input width.
        num_latents: dictionary size ``K``.
        k: active latents per input.
        aux_k: dead latents used by AuxK (default ``d_in // 2``); 0 disables AuxK.
        aux_coef: AuxK weight (1/32).
        dead_after_tokens: inputs without firing after which a latent counts as dead.
        sparse_path: use the sparse fast path in :meth:`loss` (see the module docstring); ``None``
            chooses it when ``num_latents >= 8 * k``. Ignored (dense) for subclasses that change the
            activation or the loss.
    """

    def __init__(self, d_in: int, num_latents: int, k: int = 32, aux_k: int | None = None,
                 aux_coef: float = 1 / 32, dead_after_tokens: int = 10_000_000,
                 sparse_path: bool | None = None) -> None:
        super().__init__(d_in, num_latents)
        if not isinstance(k, int) or not 0 < k <= num_latents:
            raise ValueError(f"k must be an integer in [1, num_latents={num_latents}], got {k!r}")
        self.k = k
        self.aux_k = d_in // 2 if aux_k is None else aux_k
        if self.aux_k < 0:
            raise ValueError(f"aux_k must be >= 0, got {aux_k}")
        self.resolve_init_args(aux_k=self.aux_k)
        self.aux_coef, self.dead_after_tokens = aux_coef, dead_after_tokens
        self.register_buffer("tokens_since_fired", torch.zeros(num_latents, dtype=torch.long))
        self._silent_bound, self._bound_key = 0, tensor_key(self.tokens_since_fired)
        if sparse_path is not None and not isinstance(sparse_path, bool):
            raise ValueError(f"sparse_path must be True, False or None, got {sparse_path!r}")
        self.sparse_path = sparse_path

    saelens_architecture = "topk"  # also Matryoshka and Archetypal: their inference is a TopK
    saelens_loader = True

    def saelens_form(self) -> tuple[SparseAutoencoder, dict]:
        return self, {"k": self.k}

    @classmethod
    def from_saelens(cls, cfg: dict, weights: dict[str, torch.Tensor]) -> SparseAutoencoder:
        """A TopK SAE from SAELens; ``rescale_acts_by_decoder_norm = true`` has the decoder norms folded in."""
        if cfg.get("rescale_acts_by_decoder_norm", False):
            weights = fold_decoder_norm(weights)
        return cls(int(cfg["d_in"]), int(cfg["d_sae"]), k=int(cfg["k"])).copy_weights(weights)

    @classmethod
    def _sparse_path_supported(cls) -> bool:
        """The sparse path reproduces TopKSAE's own activate / loss / sparsity_loss only."""
        return all(getattr(cls, name) is getattr(TopKSAE, name) for name in ("activate", "loss", "sparsity_loss"))

    @property
    def uses_sparse_path(self) -> bool:
        """Whether :meth:`loss` takes the sparse path (``sparse_path``, or ``num_latents >= 8·k`` if None)."""
        if not self._sparse_path_supported():
            return False
        return self.num_latents >= 8 * self.k if self.sparse_path is None else self.sparse_path

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        return topk_codes(pre, self.k)

    @property
    def dead(self) -> torch.Tensor:
        """``(K,)`` bool: latents silent for at least ``dead_after_tokens`` inputs."""
        return self.tokens_since_fired >= self.dead_after_tokens

    @torch.no_grad()
    def update_firing(self, codes: torch.Tensor) -> None:
        self._record_firing(codes.shape[0], (codes > 0).any(dim=0))

    @torch.no_grad()
    def update_firing_sparse(self, values: torch.Tensor, indices: torch.Tensor) -> None:
        """:meth:`update_firing` from the active ``values``/``indices`` ``(n, k)``."""
        # scatter every pick, the silent ones into a spare slot K: no boolean-mask indexing (a sync on GPU)
        slots = torch.where(values > 0, indices, self.num_latents).flatten()
        fired = torch.zeros(self.num_latents + 1, dtype=torch.bool, device=values.device).scatter_(0, slots, True)
        self._record_firing(values.shape[0], fired[:-1])

    def _record_firing(self, count: int, fired: torch.Tensor) -> None:
        """Advance the dead-latent counters by ``count`` inputs; reset the ``(K,)`` ``fired`` ones.

        Summed over ranks (:meth:`rank_reduce`, which ``SAETask`` installs under DDP), the counters count
        every rank's inputs and a latent firing on any rank resets them, so every rank holds the same
        counters and AuxK picks the same dead latents. (Under DDP the summed count is read back to the
        host for :meth:`may_have_dead`: one synchronisation per step there.)
        """
        bound_known = self._counter_is_known()
        if self.reduces_across_ranks:
            total = self.rank_reduce(torch.cat([fired.long(), torch.tensor([count], device=fired.device)]), "sum")
            fired, count = total[:-1] > 0, int(total[-1])
        self.tokens_since_fired.add_(count).masked_fill_(fired, 0)
        if bound_known:  # the counters grew by at most `count`: the bound follows without reading them
            self._silent_bound, self._bound_key = self._silent_bound + count, tensor_key(self.tokens_since_fired)

    def _counter_is_known(self) -> bool:
        """Whether the counters are the buffer, at the version, this class last wrote (any other write or a
        load changes the key)."""
        return same_tensor(self._bound_key, self.tokens_since_fired)

    def may_have_dead(self) -> bool:
        """Whether some latent can be dead, decided on the host (a step reads no device value).

        ``_silent_bound`` bounds ``max(tokens_since_fired)`` from above and advances by each step's input
        count. It is trusted only while the buffer is the tensor, at the version, this class last wrote
        (or a copy made by ``.to()``); after a ``load_state_dict`` or a direct write it is re-read once.
        """
        if not self._counter_is_known():
            counter = self.tokens_since_fired
            self._silent_bound = int(counter.max()) if counter.numel() else 0
            self._bound_key = tensor_key(self.tokens_since_fired)
        return self._silent_bound >= self.dead_after_tokens

    def _apply(self, fn, recurse: bool = True):
        # .to() / .cuda() / .double() copy the counters unchanged: carry the bound over to the new buffer
        bound_known = self._counter_is_known()
        module = super()._apply(fn, recurse)
        if bound_known:
            self._bound_key = tensor_key(self.tokens_since_fired)
        return module

    def loss(self, x: torch.Tensor) -> SAEOutput:
        """As the base class (MSE + AuxK); on the sparse path see the module docstring."""
        if not self.uses_sparse_path:
            return super().loss(x)
        x_scaled = self.scale_input(x)
        x_centered = x_scaled - self.b_dec
        values, indices, pre = topk_encode(x_centered, self.W_enc, self.b_enc, self.k, True)
        x_hat = sparse_decode(values, indices, self.W_dec, self.b_dec)
        mse = (x_hat - x_scaled).pow(2).mean()
        parts = {"mse": mse}
        if self.training:
            self.update_firing_sparse(values, indices)
        dead = self.aux_dead()
        if dead is not None:
            aux_pre, aux_indices = pre.masked_fill(~dead, float("-inf")).topk(self.aux_width, dim=-1, sorted=False)
            aux_values = gathered_linear(aux_pre, x_centered, self.W_enc, self.b_enc, aux_indices).relu()
            residual_hat = sparse_decode(aux_values, aux_indices, self.W_dec)
            fvu = residual_fvu(residual_hat, (x_scaled - x_hat).detach())
            parts["auxk"] = self.aux_coef * fvu * dead.any().to(fvu.dtype)
        del pre
        return SAEOutput(sum(parts.values()), None, x_hat, parts, active=(values, indices),
                         num_latents=self.num_latents)

    def sparsity_loss(self, x_scaled, pre, codes, x_hat) -> dict[str, torch.Tensor]:
        if self.training:
            self.update_firing(codes)
        dead = self.aux_dead()
        if dead is None:
            return {}
        return {"auxk": self.aux_coef * self.auxk_loss(x_scaled, pre, x_hat, dead)}

    def aux_dead(self) -> torch.Tensor | None:
        """The ``(K,)`` dead-latent mask AuxK uses, or ``None`` when AuxK is off or no latent can be dead yet
        (:meth:`may_have_dead`); the mask may still be all False, which makes the AuxK term 0."""
        return self.dead if self.aux_k > 0 and self.may_have_dead() else None

    @property
    def aux_width(self) -> int:
        """Latents AuxK picks per input, ``min(aux_k, K)``; picks beyond the dead ones are live latents at
        ``-inf`` whose codes ReLU to 0, so the codes equal a top-``min(aux_k, #dead)`` of the dead ones."""
        return min(self.aux_k, self.num_latents)

    def auxk_loss(self, x_scaled, pre, x_hat, dead) -> torch.Tensor:
        """FVU of the detached residual reconstructed from the top ``aux_k`` dead latents (0 if none is dead)."""
        aux_codes = topk_codes(pre.masked_fill(~dead, float("-inf")), self.aux_width)
        fvu = residual_fvu(aux_codes @ self.W_dec, (x_scaled - x_hat).detach())
        return fvu * dead.any().to(fvu.dtype)


def fold_decoder_norm(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """SAELens's ``rescale_acts_by_decoder_norm`` (its TopK training default) multiplies latent ``i``'s
    pre-activation by ``‖W_dec[i]‖`` before TopK and divides its code by it before decoding. Folding
    the norms in — ``W_enc[:, i]`` and ``b_enc[i]`` times the norm, ``W_dec[i]`` divided by it — gives
    the plain TopK with the same codes and outputs (SAELens's own ``fold_W_dec_norm``)."""
    norm = weights["W_dec"].float().norm(dim=1).clamp_min(1e-8)  # SAELens's get_W_dec_norm clamp
    return {**weights, "W_enc": weights["W_enc"].float() * norm, "b_enc": weights["b_enc"].float() * norm,
            "W_dec": weights["W_dec"].float() / norm[:, None]}
