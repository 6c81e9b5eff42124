"""The blocked backend: each query block attends only to the key blocks its layout visits.

Forward and backward are written out (a ``torch.autograd.Function``) and run over chunks of
query blocks, so every intermediate is a few MB whatever ``N`` is: per chunk, gather the visited
key/value blocks (``index_select``), scores by batched matmul, additive mask, softmax via its
log-sum-exp, output. Backward recomputes the probabilities from the saved log-sum-exp (as
FlashAttention does) instead of storing them, so memory is ``O(N·d)`` plus the layout, and
scatters key/value gradients back with ``index_add_``. Time and memory grow as ``N·K·bs``
instead of ``N²``; any device. Equality with the dense reference (outputs and gradients) is tested.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from vtrep.attention.backends.layout import BlockLayout

CHUNK_SCORES = 1 << 20
"""Score entries per chunk (4 MB in fp32): small enough to stay in cache, large enough for efficient matmuls."""


def _pad_blocks(x: torch.Tensor, bs: int) -> torch.Tensor:
    """``(B, h, N, d)`` → ``(B, h, nb, bs, d)``, zero-padded at the end."""
    pad = (-x.shape[-2]) % bs
    return F.pad(x, (0, 0, 0, pad)).unflatten(-2, (-1, bs))


def _flat_key_index(key_blocks: torch.Tensor, batch: int, heads: int, num_key_blocks: int) -> torch.Tensor:
    """``(Bl, Hl, nbq, K)`` block ids → ``(B, h, nbq, K)`` rows of the flattened ``(B·h·nbk, bs, d)`` keys."""
    base = (torch.arange(batch, device=key_blocks.device)[:, None] * heads
            + torch.arange(heads, device=key_blocks.device)) * num_key_blocks
    return base[:, :, None, None] + key_blocks


def _chunks(layout: BlockLayout, rows_per_block: int):
    """Ranges of query blocks holding about :data:`CHUNK_SCORES` scores each."""
    nbq, width = layout.key_blocks.shape[-2], layout.mask.shape[-1]
    step = max(1, CHUNK_SCORES // (rows_per_block * layout.block_size * width))
    return [(start, min(start + step, nbq)) for start in range(0, nbq, step)]


def _scores(q, k_flat, index, mask, start, stop):
    """Masked scores ``(B, h, c, bs, K·bs)`` of query blocks ``start:stop``, their gathered keys
    ``(B, h, c, K·bs, d)`` and the flat key-block ids they were gathered with."""
    b, h, _, bs, d = q.shape
    flat = index[:, :, start:stop].flatten()
    keys = k_flat.index_select(0, flat).view(b, h, stop - start, -1, d)
    scores = torch.matmul(q[:, :, start:stop], keys.transpose(-1, -2))
    return scores.masked_fill_(~mask[:, :, start:stop], float("-inf")), keys, flat


def _softmax_(scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax over the last dim in place, with its log-sum-exp; one ``exp`` pass (``logsumexp`` would add one).

    A row with no allowed key (possible in one part of a union of layouts) gets zero
    probabilities and a log-sum-exp of ``-inf``.
    """
    peak = scores.amax(-1, keepdim=True)
    peak = peak.masked_fill_(torch.isneginf(peak), 0.0)
    total = scores.sub_(peak).exp_().sum(-1, keepdim=True)
    return scores.div_(total.clamp_min(torch.finfo(scores.dtype).tiny)), (peak + total.log()).squeeze(-1)


class _BlockedAttention(torch.autograd.Function):
    """``q (B, h, nbq, bs, d)`` (pre-scaled), ``k, v (B, h, nbk, bs, d)`` → ``(B, h, nbq, bs, d)``."""

    @staticmethod
    def forward(ctx, q, k, v, layout: BlockLayout):
        b, h, nbk, bs, d = k.shape
        index = _flat_key_index(layout.key_blocks, b, h, nbk)
        k_flat, v_flat = k.reshape(-1, bs, d), v.reshape(-1, bs, d)
        out = q.new_empty(q.shape)
        lse = q.new_empty(q.shape[:-1])
        for start, stop in _chunks(layout, b * h):
            scores, _, flat = _scores(q, k_flat, index, layout.mask, start, stop)
            probs, lse[:, :, start:stop] = _softmax_(scores)
            values = v_flat.index_select(0, flat).view(b, h, stop - start, -1, d)
            out[:, :, start:stop] = torch.matmul(probs, values)
        # empty rows recompute exp(-inf - inf) = 0 in backward instead of NaN
        ctx.save_for_backward(q, k, v, out, lse.masked_fill(torch.isneginf(lse), float("inf")))
        ctx.layout = layout
        return out, lse

    @staticmethod
    def backward(ctx, grad_out, grad_lse):
        q, k, v, out, lse = ctx.saved_tensors
        layout = ctx.layout
        b, h, nbk, bs, d = k.shape
        index = _flat_key_index(layout.key_blocks, b, h, nbk)
        k_flat, v_flat = k.reshape(-1, bs, d), v.reshape(-1, bs, d)
        grad_out = grad_out.contiguous()
        delta = (grad_out * out).sum(-1)  # rowsum(dO ∘ O) = rowsum(dP ∘ P)
        if grad_lse is not None:  # d lse / d scores = P, so it joins the softmax's row term
            delta = delta - grad_lse
        grad_q = torch.empty_like(q)
        grad_k, grad_v = torch.zeros_like(k_flat), torch.zeros_like(v_flat)
        for start, stop in _chunks(layout, b * h):
            scores, keys, flat = _scores(q, k_flat, index, layout.mask, start, stop)
            probs = scores.sub_(lse[:, :, start:stop, :, None]).exp_()
            values = v_flat.index_select(0, flat).view(b, h, stop - start, -1, d)
            go = grad_out[:, :, start:stop]
            grad_v.index_add_(0, flat, torch.matmul(probs.transpose(-1, -2), go).view(-1, bs, d))
            grad_scores = torch.matmul(go, values.transpose(-1, -2))
            grad_scores.sub_(delta[:, :, start:stop, :, None]).mul_(probs)
            grad_q[:, :, start:stop] = torch.matmul(grad_scores, keys)
            qc = q[:, :, start:stop]
            grad_k.index_add_(0, flat, torch.matmul(grad_scores.transpose(-1, -2), qc).view(-1, bs, d))
        return grad_q, grad_k.view_as(k), grad_v.view_as(v), None


def blocked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, layout: BlockLayout,
                      return_lse: bool = False):
    """``q (B, heads, Nq, d)``, ``k, v (B, heads, Nk, d)`` → ``(B, heads, Nq, d)``, equal to the dense reference.

    With ``return_lse`` also the rows' log-sum-exp ``(B, heads, Nq)`` of the scaled scores
    (differentiable), to merge this attention with another over disjoint keys.
    """
    if (q.shape[-2], k.shape[-2]) != (layout.num_queries, layout.num_keys):
        raise ValueError(f"layout is for {layout.num_queries} queries and {layout.num_keys} keys, got "
                         f"{q.shape[-2]} and {k.shape[-2]}")
    bs = layout.block_size
    qb = _pad_blocks(q * (1.0 / math.sqrt(q.shape[-1])), bs)
    layout = _on_device(layout, q.device)
    out, lse = _BlockedAttention.apply(qb, _pad_blocks(k, bs), _pad_blocks(v, bs), layout)
    out = out.flatten(2, 3)[:, :, :layout.num_queries]
    return (out, lse.flatten(2, 3)[:, :, :layout.num_queries]) if return_lse else out


def _on_device(layout: BlockLayout, device: torch.device) -> BlockLayout:
    if layout.mask.device == device:
        return layout
    return BlockLayout(layout.key_blocks.to(device), layout.mask.to(device), layout.block_size,
                       layout.num_queries, layout.num_keys)
