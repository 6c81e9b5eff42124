"""The blocked backend: per query block, gather only the key blocks the pattern touches, then SDPA.

Queries and keys are cut into blocks of ``block_size`` tokens (the last one padded). A block
pair is kept when the pattern allows any of its entries; each query block then attends, with
the exact token-level mask, to the concatenation of its kept key blocks (padded to the largest
count ``K`` with masked slots). Cost and memory are ``O(N · K · block_size)`` instead of
``O(N²)``, with forward and backward from autograd on any device (gather backward is a scatter-add).
Patterns whose kept blocks are few (local window, fixed, divided space) gain; a pattern that
touches every block (the strided one) runs at dense cost here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from vtrep.attention.patterns.base import Pattern, check_positive


@dataclass
class BlockLayout:
    """``key_blocks (nbq, K)`` kept key-block ids per query block and ``mask (nbq, bs, K·bs)`` within them."""

    key_blocks: torch.Tensor
    mask: torch.Tensor
    block_size: int
    num_queries: int
    num_keys: int


def _block_mask(pattern: Pattern, nq: int, nk: int, bs: int, device) -> torch.Tensor:
    """``(nbq, nbk)`` bool: does the pattern allow any entry of this block pair? Built a query block at a time."""
    nbq, nbk = math.ceil(nq / bs), math.ceil(nk / bs)
    keys = torch.arange(nbk * bs, device=device)
    rows = []
    for block in range(nbq):
        queries = torch.arange(block * bs, min((block + 1) * bs, nq), device=device)
        allowed = pattern.mask_mod(None, None, queries[:, None], keys[None, :]) & (keys < nk)
        rows.append(allowed.view(len(queries), nbk, bs).any(dim=2).any(dim=0))
    return torch.stack(rows)


def block_layout(pattern: Pattern, num_queries: int, num_keys: int, block_size: int = 128,
                 device: torch.device | str = "cpu") -> BlockLayout:
    """The gather indices and in-block mask of ``pattern`` for ``Nq`` queries and ``Nk`` keys."""
    check_positive(block_size=block_size, num_queries=num_queries, num_keys=num_keys)
    bs = block_size
    kept = _block_mask(pattern, num_queries, num_keys, bs, device)
    count = int(kept.sum(dim=1).max())
    order = torch.sort(kept.int(), dim=1, descending=True, stable=True).indices[:, :count]  # kept first
    valid = torch.gather(kept, 1, order)  # (nbq, K)
    q_idx = torch.arange(kept.shape[0] * bs, device=device).view(-1, bs)
    k_idx = (order[:, :, None] * bs + torch.arange(bs, device=device)).flatten(1)  # (nbq, K·bs)
    mask = pattern.mask_mod(None, None, q_idx[:, :, None], k_idx[:, None, :])
    mask = mask & (k_idx < num_keys)[:, None, :] & valid.repeat_interleave(bs, dim=1)[:, None, :]
    # padded query rows attend to everything: their outputs are dropped, and an all-masked row
    # would put NaN into the backward pass
    mask = mask | (q_idx >= num_queries)[:, :, None]
    return BlockLayout(order, mask, bs, num_queries, num_keys)


def _pad_blocks(x: torch.Tensor, bs: int) -> torch.Tensor:
    """``(B, h, N, d)`` → ``(B, h, nb, bs, d)``, zero-padded at the end."""
    pad = (-x.shape[-2]) % bs
    return F.pad(x, (0, 0, 0, pad)).unflatten(-2, (-1, bs))


def blocked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, layout: BlockLayout) -> torch.Tensor:
    """``q (B, heads, Nq, d)``, ``k, v (B, heads, Nk, d)`` → ``(B, heads, Nq, d)``, equal to the dense reference."""
    if (q.shape[-2], k.shape[-2]) != (layout.num_queries, layout.num_keys):
        raise ValueError(f"layout is for {layout.num_queries} queries and {layout.num_keys} keys, got "
                         f"{q.shape[-2]} and {k.shape[-2]}")
    bs = layout.block_size
    qb = _pad_blocks(q, bs)  # (B, h, nbq, bs, d)
    kg, vg = (_pad_blocks(t, bs)[:, :, layout.key_blocks].flatten(3, 4) for t in (k, v))  # (B, h, nbq, K·bs, d)
    out = F.scaled_dot_product_attention(qb, kg, vg, attn_mask=layout.mask.to(q.device))
    return out.flatten(2, 3)[:, :, :layout.num_queries]
