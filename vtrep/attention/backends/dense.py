"""The dense reference backend: the pattern materialised as an ``(Nq, Nk)`` bool mask, then SDPA.

Memory and time grow as ``Nq·Nk``; it exists to define the right answer for the fast backends.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vtrep.attention.patterns.base import Pattern


def materialise_mask(pattern: Pattern, num_queries: int, num_keys: int,
                     device: torch.device | str = "cpu") -> torch.Tensor:
    """``(Nq, Nk)`` bool, True where the pattern lets query ``i`` attend to key ``j``."""
    q_idx = torch.arange(num_queries, device=device)[:, None]
    kv_idx = torch.arange(num_keys, device=device)[None, :]
    return pattern.mask_mod(None, None, q_idx, kv_idx).expand(num_queries, num_keys)


def dense_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, pattern: Pattern) -> torch.Tensor:
    """``q (B, heads, Nq, d)``, ``k, v (B, heads, Nk, d)`` → ``(B, heads, Nq, d)`` under ``pattern``.

    Every pattern here lets a token attend to itself, so no query row is empty; a pattern that
    leaves one empty is an error rather than NaN output.
    """
    mask = materialise_mask(pattern, q.shape[-2], k.shape[-2], q.device)
    if not mask.any(dim=-1).all():
        raise ValueError(f"{pattern!r} leaves a query with no key to attend to")
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
