"""The shared sparse-autoencoder base: parameters, decoder-norm handling, bias init, input scaling.

Axes: ``n`` feature vectors (tokens of any clip or series, flattened), ``d`` input width (``D`` of
the encoder), ``K`` latents, ``k`` active latents.

``x (n, d) → pre = (x/s − b_dec) W_enc + b_enc (n, K) → codes = activate(pre) → x̂ = s·(codes W_dec + b_dec)``

- ``s`` is the input scale (``input_scale``, a buffer; 1 until :meth:`fit_input_scale`), chosen so that
  ``E‖x/s‖² = d`` (Anthropic's and SAELens's dataset normalisation) — thresholds, bandwidths and L1
  coefficients then mean the same on every encoder. :meth:`fold_input_scale` moves ``s`` into the
  weights for export, after which ``s = 1`` and outputs are unchanged.
- Decoder rows (``W_dec[i]``, one per latent) are kept at unit norm: :meth:`remove_parallel_gradient`
  before each optimiser step and :meth:`normalise_decoder` after it (OpenAI / sparsify / SAELens).
- ``b_dec`` starts at the data's geometric median or mean (:meth:`init_decoder_bias`); ``W_enc``
  starts as ``W_decᵀ`` (tied initialisation, as in OpenAI's and sparsify's TopK SAEs).

Subclasses implement :meth:`activate` and, when they need more than the reconstruction MSE,
:meth:`sparsity_loss`. Every variant returns one :class:`SAEOutput`.
"""

from __future__ import annotations

from typing import Callable, ClassVar, Literal

import torch
from torch import nn

from vtrep.io.init_args import RecordsInitArgs

RankReduce = Callable[[torch.Tensor, str], torch.Tensor]
"""``reduce(tensor, op)`` with ``op`` ``"sum"`` or ``"min"``: the tensor reduced over every rank (the same on all)."""

SAELENS_LOADERS: dict[str, type["SparseAutoencoder"]] = {}
"""SAELens ``architecture`` name → the vtrep class :func:`vtrep.sae.io.import_saelens` builds for it."""


class SAEOutput:
    """``loss`` (scalar), its named ``parts``, ``codes (n, K)`` and the reconstruction ``x_hat (n, d)``
    (both in the scaled input space ``x / s``).

    The sparse TopK path gives ``active = (values, indices)`` ``(n, k)`` instead of dense codes: the
    ``(n, K)`` matrix is then built only if ``codes`` is read (it is a large fresh buffer that the loss
    never needs), and :attr:`l0` comes from the active values.
    """

    def __init__(self, loss: torch.Tensor, codes: torch.Tensor | None, x_hat: torch.Tensor,
                 parts: dict[str, torch.Tensor] | None = None,
                 active: tuple[torch.Tensor, torch.Tensor] | None = None, num_latents: int = 0) -> None:
        if codes is None and active is None:
            raise ValueError("SAEOutput needs dense codes or the active (values, indices)")
        self.loss, self.x_hat, self.parts = loss, x_hat, dict(parts or {})
        self._codes, self.active, self.num_latents = codes, active, num_latents

    @property
    def codes(self) -> torch.Tensor:
        if self._codes is None:
            from vtrep.sae.sparse_ops import dense_codes

            self._codes = dense_codes(*self.active, self.num_latents)
        return self._codes

    @property
    def l0(self) -> torch.Tensor:
        """Mean number of non-zero codes per input (detached)."""
        nonzero = self.active[0] != 0 if self._codes is None else self._codes != 0
        return nonzero.sum(dim=1).float().mean().detach()


class SparseAutoencoder(RecordsInitArgs, nn.Module):
    """Base class of every SAE variant.

    ``config`` records the constructor arguments of the variant (:mod:`vtrep.io.init_args`).

    What a variant declares instead of being special-cased elsewhere:

    - ``saelens_architecture``: SAELens's name for its inference form (``None``: no counterpart), and
      :meth:`saelens_form` for the model and extra ``cfg.json`` fields that export writes;
      ``saelens_loader = True`` makes the class the one :func:`~vtrep.sae.io.import_saelens` builds for
      that name, through :meth:`from_saelens`.
    - cross-rank reductions: a variant whose training state must agree across DDP ranks calls
      :meth:`rank_reduce`; the task installs the collective with :meth:`set_rank_reduce`.

    Args:
        d_in: input width ``d``.
        num_latents: dictionary size ``K`` (e.g. 16 × ``d``).
    """

    saelens_architecture: ClassVar[str | None] = None
    saelens_loader: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("saelens_loader"):
            if cls.saelens_architecture in SAELENS_LOADERS:
                raise TypeError(f"SAELens architecture {cls.saelens_architecture!r} already loads as "
                                f"{SAELENS_LOADERS[cls.saelens_architecture].__name__}")
            SAELENS_LOADERS[cls.saelens_architecture] = cls

    def __init__(self, d_in: int, num_latents: int) -> None:
        super().__init__()
        for name, value in (("d_in", d_in), ("num_latents", num_latents)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.d_in, self.num_latents = d_in, num_latents
        decoder = torch.randn(num_latents, d_in)
        self.W_dec = nn.Parameter(decoder / decoder.norm(dim=1, keepdim=True))
        self.W_enc = nn.Parameter(self.W_dec.detach().t().clone())
        self.b_enc = nn.Parameter(torch.zeros(num_latents))
        self.b_dec = nn.Parameter(torch.zeros(d_in))
        self.register_buffer("input_scale", torch.tensor(1.0))
        self._rank_reduce: RankReduce | None = None

    # -- across ranks --------------------------------------------------------------------------------
    def set_rank_reduce(self, reduce: Callable[[torch.Tensor, str], torch.Tensor] | None) -> None:
        """Install ``reduce(tensor, op)`` (``op`` ``"sum"`` or ``"min"``) over every DDP rank; ``None``
        (the default) is a single process. Every rank must then make the same calls (they are collectives)."""
        self._rank_reduce = reduce

    @property
    def reduces_across_ranks(self) -> bool:
        """Whether a reduction over ranks is installed (:meth:`set_rank_reduce`)."""
        return self._rank_reduce is not None

    def rank_reduce(self, tensor: torch.Tensor, op: Literal["sum", "min"]) -> torch.Tensor:
        """``tensor`` reduced with ``op`` over every rank; ``tensor`` itself in a single process."""
        return tensor if self._rank_reduce is None else self._rank_reduce(tensor, op)

    # -- SAELens -------------------------------------------------------------------------------------
    def saelens_form(self) -> tuple["SparseAutoencoder", dict]:
        """The model SAELens's ``saelens_architecture`` runs (this one by default) and extra ``cfg.json`` fields."""
        if self.saelens_architecture is None:
            raise ValueError(f"no SAELens architecture for {type(self).__name__}")
        return self, {}

    @classmethod
    def from_saelens(cls, cfg: dict, weights: dict[str, torch.Tensor]) -> "SparseAutoencoder":
        """This class from SAELens's ``cfg.json`` dict and weights (``W_enc``, ``W_dec``, ``b_enc``, ``b_dec``)."""
        return cls(int(cfg["d_in"]), int(cfg["d_sae"])).copy_weights(weights)

    @torch.no_grad()
    def copy_weights(self, weights: dict[str, torch.Tensor]) -> "SparseAutoencoder":
        """Copy ``W_enc``, ``W_dec``, ``b_enc`` and ``b_dec`` from ``weights``; returns ``self``."""
        for name in ("W_enc", "W_dec", "b_enc", "b_dec"):
            getattr(self, name).copy_(weights[name])
        return self

    # -- forward -------------------------------------------------------------------------------------
    def scale_input(self, x: torch.Tensor) -> torch.Tensor:
        self._check_width(x)
        return x / self.input_scale

    def pre_activation(self, x_scaled: torch.Tensor) -> torch.Tensor:
        """``(n, d)`` scaled inputs → ``(n, K)`` pre-activations."""
        return torch.addmm(self.b_enc, x_scaled - self.b_dec, self.W_enc)

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        """``(n, K)`` pre-activations → codes (mostly zeros)."""
        raise NotImplementedError

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Raw inputs ``(n, d)`` → codes ``(n, K)``."""
        return self.activate(self.pre_activation(self.scale_input(x)))

    def decode_scaled(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``(n, K)`` → reconstruction in the scaled space ``(n, d)``."""
        return torch.addmm(self.b_dec, codes, self.W_dec)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``(n, K)`` → reconstruction of the raw input ``(n, d)``."""
        return self.decode_scaled(codes) * self.input_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    # -- loss ----------------------------------------------------------------------------------------
    def loss(self, x: torch.Tensor) -> SAEOutput:
        """Reconstruction MSE (mean over ``n·d`` entries, scaled space) plus the variant's sparsity terms."""
        x_scaled = self.scale_input(x)
        pre = self.pre_activation(x_scaled)
        codes = self.activate(pre)
        x_hat = self.decode_scaled(codes)
        mse = (x_hat - x_scaled).pow(2).mean()
        parts = {"mse": mse, **self.sparsity_loss(x_scaled, pre, codes, x_hat)}
        return SAEOutput(sum(parts.values()), codes, x_hat, parts)

    def sparsity_loss(self, x_scaled: torch.Tensor, pre: torch.Tensor, codes: torch.Tensor,
                      x_hat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Extra loss terms (already weighted); none by default (TopK-style variants are sparse by construction)."""
        return {}

    # -- decoder geometry ----------------------------------------------------------------------------
    @torch.no_grad()
    def normalise_decoder(self) -> None:
        """Rescale every decoder row to unit norm."""
        self.W_dec.div_(self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12))

    @torch.no_grad()
    def remove_parallel_gradient(self) -> None:
        """Drop the component of each decoder row's gradient along the row (it would only change its norm)."""
        if self.W_dec.grad is None:
            return
        unit = self.W_dec / self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12)
        self.W_dec.grad.sub_((self.W_dec.grad * unit).sum(dim=1, keepdim=True) * unit)

    # -- data-dependent initialisation ----------------------------------------------------------------
    @torch.no_grad()
    def fit_input_scale(self, x: torch.Tensor) -> float:
        """Set ``s`` so that the mean squared norm of ``x / s`` is ``d``; returns ``s``."""
        self._check_width(x)
        scale = (x.float().pow(2).sum(dim=1).mean() / self.d_in).sqrt().clamp_min(1e-12)
        self.input_scale.fill_(scale)
        return float(scale)

    @torch.no_grad()
    def init_decoder_bias(self, x: torch.Tensor, method: Literal["geometric_median", "mean"] = "geometric_median",
                          iterations: int = 100) -> None:
        """``b_dec`` from a sample ``x (n, d)`` of raw inputs (scaled first)."""
        x_scaled = self.scale_input(x).float()
        if method == "mean":
            centre = x_scaled.mean(dim=0)
        elif method == "geometric_median":
            centre = geometric_median(x_scaled, iterations)
        else:
            raise ValueError(f"method must be 'geometric_median' or 'mean', got {method!r}")
        self.b_dec.copy_(centre)

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor) -> None:
        """Any further data-dependent initialisation, after the input scale and decoder bias (none here)."""

    @torch.no_grad()
    def fold_input_scale(self) -> None:
        """Move ``s`` into the weights (``W_enc/s``, ``s·W_dec``, ``s·b_dec``) so raw inputs need no scaling.

        Outputs are unchanged; decoder rows then have norm ``s`` instead of 1.
        """
        scale = self.input_scale.clone()
        self.W_enc.div_(scale)
        self.W_dec.mul_(scale)
        self.b_dec.mul_(scale)
        self.input_scale.fill_(1.0)  # pre-activations are unchanged, so thresholds stay valid

    def _check_width(self, x: torch.Tensor) -> None:
        if x.dim() != 2 or x.shape[1] != self.d_in:
            raise ValueError(f"{type(self).__name__} expects inputs (n, {self.d_in}), got {tuple(x.shape)}")


@torch.no_grad()
def geometric_median(points: torch.Tensor, iterations: int = 100, eps: float = 1e-8) -> torch.Tensor:
    """Weiszfeld's algorithm: the point minimising the summed Euclidean distance to ``points (n, d)``."""
    median = points.mean(dim=0)
    for _ in range(iterations):
        weights = 1.0 / (points - median).norm(dim=1).clamp_min(eps)
        update = (weights[:, None] * points).sum(dim=0) / weights.sum()
        if (update - median).norm() < eps * (1 + median.norm()):
            return update
        median = update
    return median
