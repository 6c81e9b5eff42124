"""The dense reference backend: the pattern materialised as an ``(Nq, Nk)`` bool mask, then SDPA.

Memory and time grow as ``Nq·Nk``; it exists to define the right answer for the fast backends.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vtrep.attention.backends.layout import pattern_rule
from vtrep.attention.patterns.base import Pattern


def materialise_mask(pattern: Pattern, num_queries: int, num_keys: int,
                     device: torch.device | str = "cpu") -> torch.Tensor:
    """``(Nq, Nk)`` bool, True where the pattern lets query ``i`` attend to key ``j``."""
    return rule_mask(pattern_rule(pattern), num_queries, num_keys, device)[0, 0].expand(num_queries, num_keys)


def rule_mask(rule, num_queries: int, num_keys: int, device) -> torch.Tensor:
    """``(Bl, Hl, Nq, Nk)`` bool of an ``allowed(q_idx, kv_idx)`` rule (see ``layout.Allowed``) over every pair."""
    q_idx = torch.arange(num_queries, device=device).view(1, 1, -1, 1)
    kv_idx = torch.arange(num_keys, device=device).view(1, 1, 1, -1)
    return rule(q_idx, kv_idx)


def dense_rule_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rule) -> torch.Tensor:
    """SDPA under the materialised ``rule``; a query left with no key is an error rather than NaN output."""
    mask = rule_mask(rule, q.shape[-2], k.shape[-2], q.device)
    if not mask.any(dim=-1).all():
        raise ValueError("the attention pattern leaves a query with no key to attend to")
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def dense_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, pattern: Pattern,
                    positions: torch.Tensor | None = None) -> torch.Tensor:
    """``q (B, heads, Nq, d)``, ``k, v (B, heads, Nk, d)`` → ``(B, heads, Nq, d)`` under ``pattern``
    (applied to ``positions (B, N)`` if given)."""
    return dense_rule_attention(q, k, v, pattern_rule(pattern, positions))
