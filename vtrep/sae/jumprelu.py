"""JumpReLU SAE trained on L0 with straight-through estimators (Rajamanoharan et al., 2024,
"Jumping Ahead: Improving Reconstruction Fidelity with JumpReLU Sparse Autoencoders").

``codes = pre · H(pre − θ)`` with a learned per-latent threshold ``θ = exp(log_threshold) > 0``
(``H`` the Heaviside step). The loss is the reconstruction MSE plus ``l0_coef · mean_n Σ_i H(pre_i − θ_i)``.

Neither the activation nor the step has a useful gradient wrt ``θ``, so both go through
straight-through estimators with a rectangle kernel ``rect(z) = 1[|z| < 1/2]`` of width
``ε = bandwidth`` (their section 4 / appendix pseudo-code), times the upstream gradient ``g``:

===================  ===============================  ==================================
                     ∂/∂pre                           ∂/∂θ (pseudo-derivative)
===================  ===============================  ==================================
JumpReLU activation  ``1[pre > θ] · g``                ``−(θ/ε) · rect((pre − θ)/ε) · g``
L0 step ``H``        ``0``                            ``−(1/ε) · rect((pre − θ)/ε) · g``
===================  ===============================  ==================================

``∂/∂log θ = θ · ∂/∂θ`` follows by autograd through ``exp``.

Where formulations differ, this module follows the original paper:

- The sparsity term is the plain L0 with the step STE above — not Anthropic's later (2025) variant
  with a ``tanh`` penalty and gradients into ``pre`` from the sparsity term, and not an L1 warm-up.
- The L0 step passes **no** gradient to ``pre`` (the encoder learns sparsity only through ``θ``).
- ``θ`` is stored as ``log_threshold`` so it stays positive (as in the paper's pseudo-code), and
  since ``θ > 0`` no separate ReLU is needed.
- ``threshold_init = bandwidth = 0.001`` are the paper's values. Inputs here are scaled to
  ``E‖x/s‖² = d`` (see :mod:`vtrep.sae.base`), so pre-activations are O(1) at initialisation.
- ``l0_coef`` multiplies a loss whose MSE is the mean over ``n·d`` entries, not the paper's
  squared norm summed over ``d``; the paper's ``λ`` therefore corresponds to ``λ / d`` here. The
  default ``1e-3`` makes one active latent cost 0.1 % of the (normalised, unit) per-entry input
  variance, which gives tens to a few hundred active latents on ``d`` ≈ 10²–10³ features. Tune it to
  the target L0; it is the knob that sets sparsity.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from vtrep.sae.base import SparseAutoencoder


def _rect_window(pre: torch.Tensor, threshold: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """``rect((pre − θ)/ε)`` as a float mask: 1 where ``|pre − θ| < ε/2``."""
    return ((pre - threshold).abs() < bandwidth / 2).to(pre.dtype)


def _sum_to_threshold(grad: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """Reduce an ``(..., K)`` gradient to the threshold's ``(K,)`` shape and dtype."""
    return grad.reshape(-1, grad.shape[-1]).sum(dim=0).to(threshold.dtype)


class JumpReLUFunction(torch.autograd.Function):
    """``pre · H(pre − θ)`` with the paper's straight-through pseudo-gradient for ``θ``."""

    @staticmethod
    def forward(ctx, pre: torch.Tensor, threshold: torch.Tensor, bandwidth: float) -> torch.Tensor:
        ctx.save_for_backward(pre, threshold)
        ctx.bandwidth = bandwidth
        return pre * (pre > threshold).to(pre.dtype)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        pre, threshold = ctx.saved_tensors
        grad_pre = grad_threshold = None
        if ctx.needs_input_grad[0]:
            grad_pre = grad_out * (pre > threshold).to(grad_out.dtype)
        if ctx.needs_input_grad[1]:
            window = _rect_window(pre, threshold, ctx.bandwidth)
            grad = -(threshold.to(pre.dtype) / ctx.bandwidth) * window * grad_out
            grad_threshold = _sum_to_threshold(grad, threshold)
        return grad_pre, grad_threshold, None


class StepFunction(torch.autograd.Function):
    """``H(pre − θ)`` (as a float) with zero gradient to ``pre`` and the rectangle STE for ``θ``."""

    @staticmethod
    def forward(ctx, pre: torch.Tensor, threshold: torch.Tensor, bandwidth: float) -> torch.Tensor:
        ctx.save_for_backward(pre, threshold)
        ctx.bandwidth = bandwidth
        return (pre > threshold).to(pre.dtype)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        pre, threshold = ctx.saved_tensors
        grad_pre = grad_threshold = None
        if ctx.needs_input_grad[0]:
            grad_pre = torch.zeros_like(pre)
        if ctx.needs_input_grad[1]:
            window = _rect_window(pre, threshold, ctx.bandwidth)
            grad_threshold = _sum_to_threshold(-(1.0 / ctx.bandwidth) * window * grad_out, threshold)
        return grad_pre, grad_threshold, None


def jumprelu(pre: torch.Tensor, threshold: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """JumpReLU with the STE of :class:`JumpReLUFunction`."""
    return JumpReLUFunction.apply(pre, threshold, bandwidth)


def step(pre: torch.Tensor, threshold: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """Heaviside ``H(pre − θ)`` with the STE of :class:`StepFunction`."""
    return StepFunction.apply(pre, threshold, bandwidth)


def _positive_float(name: str, value: Any, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return float(value)


class JumpReLUSAE(SparseAutoencoder):
    """JumpReLU sparse autoencoder with a learned per-latent threshold.

    Args:
        d_in: input width.
        num_latents: dictionary size ``K``.
        threshold_init: initial ``θ`` of every latent (> 0; 0.001 as in the paper).
        bandwidth: STE kernel width ``ε`` (> 0; 0.001 as in the paper).
        l0_coef: weight of the L0 term (>= 0; see the module docstring for the default 1e-3).
    """

    def __init__(self, d_in: int, num_latents: int, threshold_init: float = 0.001, bandwidth: float = 0.001,
                 l0_coef: float = 1e-3) -> None:
        super().__init__(d_in, num_latents)
        self.threshold_init = _positive_float("threshold_init", threshold_init)
        self.bandwidth = _positive_float("bandwidth", bandwidth)
        self.l0_coef = _positive_float("l0_coef", l0_coef, allow_zero=True)
        self.log_threshold = nn.Parameter(torch.full((num_latents,), math.log(self.threshold_init)))

    saelens_architecture = "jumprelu"
    saelens_loader = True

    @classmethod
    def from_saelens(cls, cfg: dict, weights: dict[str, torch.Tensor]) -> "JumpReLUSAE":
        return cls.from_weights(weights["W_enc"], weights["b_enc"], weights["W_dec"], weights["b_dec"],
                                weights["threshold"])

    @property
    def threshold(self) -> torch.Tensor:
        """``(K,)`` thresholds ``θ = exp(log_threshold)`` (differentiable)."""
        return self.log_threshold.exp()

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        return jumprelu(pre, self.threshold, self.bandwidth)

    def sparsity_loss(self, x_scaled, pre, codes, x_hat) -> dict[str, torch.Tensor]:
        l0 = step(pre, self.threshold, self.bandwidth).sum(dim=-1).mean()
        return {"l0": self.l0_coef * l0}

    @classmethod
    def from_weights(cls, W_enc: torch.Tensor, b_enc: torch.Tensor, W_dec: torch.Tensor, b_dec: torch.Tensor,
                     threshold: torch.Tensor | float, input_scale: torch.Tensor | float = 1.0,
                     **kwargs: Any) -> "JumpReLUSAE":
        """A JumpReLU SAE with the given weights (copied as they are: decoder rows need not be unit,
        e.g. after :meth:`fold_input_scale`) and thresholds ``θ`` (a ``(K,)`` vector or one scalar,
        all > 0). ``kwargs`` are the other constructor arguments (``bandwidth``, ``l0_coef``, ...).

        Parameters take ``W_enc``'s dtype and device. ``log θ`` is stored, so ``exp(log θ)`` may
        differ from ``θ`` by an ulp.
        """
        if W_enc.dim() != 2:
            raise ValueError(f"W_enc must be (d_in, num_latents), got {tuple(W_enc.shape)}")
        d_in, num_latents = W_enc.shape
        expected = {"b_enc": (num_latents,), "W_dec": (num_latents, d_in), "b_dec": (d_in,)}
        for name, tensor in (("b_enc", b_enc), ("W_dec", W_dec), ("b_dec", b_dec)):
            if tuple(tensor.shape) != expected[name]:
                raise ValueError(f"{name} must have shape {expected[name]}, got {tuple(tensor.shape)}")
        threshold = torch.as_tensor(threshold, dtype=W_enc.dtype, device=W_enc.device).detach()
        if threshold.dim() == 0:
            threshold = threshold.expand(num_latents)
        if tuple(threshold.shape) != (num_latents,):
            raise ValueError(f"threshold must be a scalar or have shape ({num_latents},), got {tuple(threshold.shape)}")
        if not bool(torch.isfinite(threshold).all()) or not bool((threshold > 0).all()):
            raise ValueError("threshold must be finite and > 0 for every latent")
        scale = float(input_scale)
        if not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"input_scale must be finite and > 0, got {scale!r}")
        model = cls(int(d_in), int(num_latents), **kwargs).to(device=W_enc.device, dtype=W_enc.dtype)
        with torch.no_grad():
            model.W_enc.copy_(W_enc)
            model.b_enc.copy_(b_enc)
            model.W_dec.copy_(W_dec)
            model.b_dec.copy_(b_dec)
            model.log_threshold.copy_(threshold.log())
            model.input_scale.fill_(scale)
        return model
