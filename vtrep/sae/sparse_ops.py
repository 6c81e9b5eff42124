"""Sparse kernels for TopK SAEs: encode with a backward over the ``k`` active latents only, and decode
from ``(values, indices)`` without building the dense ``(n, K)`` code matrix.

Axes as in :mod:`vtrep.sae.base`: ``n`` inputs, ``d`` input width, ``K`` latents, ``k`` active latents.

- :class:`TopKEncode` — forward is the dense ``pre = b_enc + x_c W_enc`` (one ``addmm``; choosing the
  top ``k`` needs every pre-activation), then ``TopK_k`` and ReLU, returned as ``values (n, k)`` and
  ``indices (n, k)``. The backward never touches the other ``K − k`` latents: with ``g (n, k)`` the
  incoming gradient, zeroed where ``value ≤ 0`` (ReLU), and ``G`` the sparse ``(n, K)`` matrix holding it,

  - ``∂x_c = G W_encᵀ``, i.e. row ``i`` is ``Σ_j g_ij W_enc[:, idx_ij]`` (``F.embedding_bag`` over a
    contiguous ``W_encᵀ`` with ``per_sample_weights``),
  - ``∂W_enc = x_cᵀ G`` (a sparse–dense product ``Gᵀ x_c``, torch sparse COO),
  - ``∂b_enc = Σ_i G_i`` (``index_add_``).

  So the backward costs ``O(n·k·d)`` instead of the dense ``O(n·K·d)`` (two of the three big matmuls
  of a training step).
- :class:`GatheredLinear` — the same backward for pre-activations that were already computed (without
  grad) and picked by the caller: the AuxK term's dead latents (see :meth:`TopKSAE.loss
  <vtrep.sae.topk.TopKSAE.loss>`). Its forward returns the given values unchanged, so they are
  bit-identical to the dense path's.
- :func:`sparse_decode` — ``x̂ = Σ_j values_ij W_dec[idx_ij] + b_dec`` via ``F.embedding_bag``
  (autograd provides its backward; ``∂W_dec`` is a dense ``(K, d)`` tensor, as on the dense path).

``x_c`` is the centred, scaled input ``x / s − b_dec``; the caller computes it with autograd, so
gradients reach ``x`` and ``b_dec`` through ordinary ops.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _sparse_linear_backward(grad: torch.Tensor, x_centered: torch.Tensor, W_enc: torch.Tensor,
                            indices: torch.Tensor, needs: tuple[bool, bool, bool]):
    """Gradients of ``v_ij = x_c[i] · W_enc[:, idx_ij] + b_enc[idx_ij]`` given ``∂v = grad (n, m)``.

    Returns ``(∂x_c, ∂W_enc, ∂b_enc)``, ``None`` where ``needs`` says it is not wanted.
    """
    n, m = indices.shape
    num_latents = W_enc.shape[1]
    grad = grad.to(W_enc.dtype).contiguous()
    grad_x = grad_w = grad_b = None
    if needs[0]:
        # row i: Σ_j grad_ij · W_enc[:, idx_ij]
        grad_x = F.embedding_bag(indices, W_enc.t().contiguous(), per_sample_weights=grad, mode="sum")
    if needs[1] or needs[2]:
        flat_idx, flat_grad = indices.reshape(-1), grad.reshape(-1)
    if needs[1]:
        # ∂W_encᵀ = Gᵀ x_c with G (n, K) sparse: rows of Gᵀ are latents, columns are inputs
        rows = torch.arange(n, device=indices.device).repeat_interleave(m)
        g_t = torch.sparse_coo_tensor(torch.stack([flat_idx, rows]), flat_grad, (num_latents, n),
                                      is_coalesced=False, check_invariants=False)
        grad_w = torch.sparse.mm(g_t, x_centered.to(W_enc.dtype)).t()
    if needs[2]:
        grad_b = torch.zeros(num_latents, dtype=W_enc.dtype, device=W_enc.device).index_add_(0, flat_idx, flat_grad)
    return grad_x, grad_w, grad_b


class TopKEncode(torch.autograd.Function):
    """``(x_c (n, d), W_enc (d, K), b_enc (K,), k)`` → ``values (n, k)`` (ReLU'd) and ``indices (n, k)``
    (unsorted, as ``Tensor.topk(sorted=False)``); with ``return_pre`` also the dense pre-activations
    ``(n, K)`` as a third, non-differentiable output (for AuxK's dead-latent selection).

    Use through :func:`topk_encode`. Values and indices equal the dense path's
    ``pre.topk(k, sorted=False)`` (the same ``addmm`` and ``topk`` calls); the backward is sparse.
    """

    @staticmethod
    def forward(ctx, x_centered, W_enc, b_enc, k: int, return_pre: bool = False):
        pre = torch.addmm(b_enc, x_centered, W_enc)
        values, indices = pre.topk(k, dim=-1, sorted=False)
        values = values.relu()
        ctx.save_for_backward(x_centered, W_enc, values, indices)
        ctx.mark_non_differentiable(indices)
        ctx.set_materialize_grads(False)  # else autograd fills an (n, K) zero gradient for `pre`
        if return_pre:
            ctx.mark_non_differentiable(pre)
            return values, indices, pre
        return values, indices

    @staticmethod
    def backward(ctx, grad_values, *_unused):
        x_centered, W_enc, values, indices = ctx.saved_tensors
        if grad_values is None:
            return None, None, None, None, None
        grad = grad_values.masked_fill(values <= 0, 0)  # ReLU: no gradient where the code is 0
        needs = tuple(ctx.needs_input_grad[:3])
        grad_x, grad_w, grad_b = _sparse_linear_backward(grad, x_centered, W_enc, indices, needs)
        return grad_x, grad_w, grad_b, None, None


class GatheredLinear(torch.autograd.Function):
    """Attach the sparse backward of ``v_ij = x_c[i] · W_enc[:, idx_ij] + b_enc[idx_ij]`` to values
    ``v (n, m)`` already computed without grad (returned unchanged); ``indices (n, m)`` must be distinct
    per row. Use through :func:`gathered_linear`."""

    @staticmethod
    def forward(ctx, values, x_centered, W_enc, b_enc, indices):
        ctx.save_for_backward(x_centered, W_enc, indices)
        return values.clone()

    @staticmethod
    def backward(ctx, grad_values):
        x_centered, W_enc, indices = ctx.saved_tensors
        needs = tuple(ctx.needs_input_grad[1:4])
        grad_x, grad_w, grad_b = _sparse_linear_backward(grad_values, x_centered, W_enc, indices, needs)
        return None, grad_x, grad_w, grad_b, None


def topk_encode(x_centered: torch.Tensor, W_enc: torch.Tensor, b_enc: torch.Tensor, k: int,
                return_pre: bool = False):
    """:class:`TopKEncode`: ``(values, indices)`` or, with ``return_pre``, ``(values, indices, pre)``."""
    return TopKEncode.apply(x_centered, W_enc, b_enc, k, return_pre)


def gathered_linear(values: torch.Tensor, x_centered: torch.Tensor, W_enc: torch.Tensor, b_enc: torch.Tensor,
                    indices: torch.Tensor) -> torch.Tensor:
    """:class:`GatheredLinear`: ``values`` (precomputed pre-activations at ``indices``) with a sparse backward."""
    return GatheredLinear.apply(values, x_centered, W_enc, b_enc, indices)


def sparse_decode(values: torch.Tensor, indices: torch.Tensor, W_dec: torch.Tensor,
                  b_dec: torch.Tensor | None = None) -> torch.Tensor:
    """``Σ_j values_ij W_dec[idx_ij] (+ b_dec)`` — equals ``codes @ W_dec + b_dec`` with ``codes`` the
    dense ``(n, K)`` scatter of ``values`` at ``indices`` (indices distinct per row)."""
    out = F.embedding_bag(indices, W_dec, per_sample_weights=values.to(W_dec.dtype), mode="sum")
    return out if b_dec is None else out + b_dec


def dense_codes(values: torch.Tensor, indices: torch.Tensor, num_latents: int) -> torch.Tensor:
    """The dense ``(n, K)`` codes of ``(values, indices)`` (same autograd as ``values``)."""
    return values.new_zeros(values.shape[0], num_latents).scatter(-1, indices, values)
