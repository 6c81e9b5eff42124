"""Attention over a union of disjoint key sets, each run blocked in its own token order, merged exactly.

A pattern that is not block-sparse in one token order can be the union of parts that are, each
in its own order (Sparse Transformer's strided pattern: a band in time order, a residue class in
``t mod stride`` order). Each part yields its output and log-sum-exp; since the parts' key sets
are disjoint, ``lse = logaddexp(lse_1, lse_2, ...)`` and ``out = Σ exp(lse_i − lse)·out_i`` is the
single softmax over the union, with gradients through autograd.
"""

from __future__ import annotations

import torch

from vtrep.attention.backends.blocked import blocked_attention
from vtrep.attention.backends.layout import BlockLayout


def union_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                    parts: list[tuple[BlockLayout, torch.Tensor | None]]) -> torch.Tensor:
    """``q, k, v (B, heads, N, d)`` → ``(B, heads, N, d)``; each part is ``(layout, order)`` with ``order (N,)``
    the token permutation its layout is built in (``None``: natural order)."""
    outs, lses = [], []
    for layout, order in parts:
        if layout.key_blocks.shape[-1] == 0:  # the part has no pair at this length
            continue
        if order is None:
            out, lse = blocked_attention(q, k, v, layout, return_lse=True)
        else:
            inverse = torch.argsort(order)
            out, lse = blocked_attention(q[:, :, order], k[:, :, order], v[:, :, order], layout, return_lse=True)
            out, lse = out[:, :, inverse], lse[:, :, inverse]
        outs.append(out)
        lses.append(lse)
    total = torch.stack(lses).logsumexp(0)
    return sum(out * (lse - total).exp().unsqueeze(-1) for out, lse in zip(outs, lses))
