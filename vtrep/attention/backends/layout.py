"""Block layouts: which key blocks each query block visits, and the exact token mask inside them.

Queries and keys are cut into blocks of ``block_size`` tokens (the last one padded). A layout
holds, per query block, the ``K`` key blocks it visits and the ``(block_size, K·block_size)``
token mask over them. Layouts carry two leading dims ``(Bl, Hl)`` that broadcast against
``(B, heads)``: ``(1, 1)`` for a static pattern, ``(B, 1)`` when every sample has its own token
positions (the visible tokens of a masked encoder), ``(B, heads)`` for content-dependent
selection (block top-k).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from vtrep.attention.patterns.base import check_positive

KEY_SPAN = 4096
"""Keys per rule evaluation when finding the kept blocks."""

Allowed = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``allowed(q_idx, kv_idx) -> bool``: token indices with two leading ``(Bl, Hl)`` dims that broadcast."""


@dataclass
class BlockLayout:
    """``key_blocks (Bl, Hl, nbq, K)`` visited key blocks and ``mask (Bl, Hl, nbq, bs, K·bs)`` inside them."""

    key_blocks: torch.Tensor
    mask: torch.Tensor
    block_size: int
    num_queries: int
    num_keys: int

    @property
    def density(self) -> float:
        """Fraction of the ``Nq × Nk`` score matrix the blocked backend computes."""
        visited = self.key_blocks.shape[-1] * self.block_size * self.mask.shape[-4] * self.block_size
        return visited / (self.num_queries * self.num_keys)


def take_positions(positions: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``positions (B, N)`` looked up at ``idx (Bl, Hl, ...)`` (``Bl`` is 1 or ``B``) → ``(B, Hl, ...)``."""
    idx = idx.expand(positions.shape[0], *idx.shape[1:])
    return torch.gather(positions, 1, idx.reshape(idx.shape[0], -1)).view(idx.shape)


def pattern_rule(pattern, positions: torch.Tensor | None = None) -> Allowed:
    """``pattern.mask_mod`` as an :data:`Allowed` on sequence indices, mapped through ``positions (B, N)`` if given."""
    if positions is None:
        return lambda q_idx, kv_idx: pattern.mask_mod(None, None, q_idx, kv_idx)
    return lambda q_idx, kv_idx: pattern.mask_mod(None, None, take_positions(positions, q_idx),
                                                  take_positions(positions, kv_idx))


def kept_blocks(allowed: Allowed, num_queries: int, num_keys: int, block_size: int,
                device: torch.device | str = "cpu") -> torch.Tensor:
    """``(Bl, Hl, nbq, nbk)`` bool: does ``allowed`` permit any entry of the block pair?

    Evaluated a query block × :data:`KEY_SPAN` keys at a time: small, equal-sized temporaries keep
    the allocator from growing the heap (whole-row temporaries cost GBs of peak RSS at 16k tokens).
    """
    bs = block_size
    nbk = math.ceil(num_keys / bs)
    span = max(bs, KEY_SPAN // bs * bs)
    keys = torch.arange(nbk * bs, device=device)
    rows = []
    for start in range(0, num_queries, bs):
        queries = torch.arange(start, min(start + bs, num_queries), device=device).view(1, 1, -1, 1)
        row = []
        for k0 in range(0, nbk * bs, span):
            part = keys[k0:k0 + span]
            hit = allowed(queries, part.clamp(max=num_keys - 1).view(1, 1, 1, -1)) & (part < num_keys)
            row.append(hit.unflatten(-1, (-1, bs)).any(-1).any(-2))
        rows.append(torch.cat(row, dim=-1))
    return torch.stack(rows, dim=-2)


def _evaluate_by_query_blocks(allowed: Allowed, q_idx: torch.Tensor, k_idx: torch.Tensor) -> torch.Tensor:
    """``allowed(q_idx (1, 1, nbq, bs, 1), k_idx (Bl, Hl, nbq, 1, L))`` a few query blocks at a time.

    The rule's integer temporaries are 8× the bool result; chunks of about 2²⁰ entries keep them at 8 MB.
    """
    nbq = q_idx.shape[2]
    per_block = q_idx.shape[3] * k_idx.shape[-1] * k_idx.shape[0] * k_idx.shape[1]
    step = max(1, (1 << 20) // per_block)
    parts = [allowed(q_idx[:, :, i:i + step], k_idx[:, :, i:i + step]) for i in range(0, nbq, step)]
    return torch.cat(parts, dim=2)


def layout_from_blocks(kept: torch.Tensor, allowed: Allowed, num_queries: int, num_keys: int,
                       block_size: int, allow_empty: bool = False, whole: torch.Tensor | None = None) -> BlockLayout:
    """The layout visiting the ``kept (Bl, Hl, nbq, nbk)`` block pairs, with ``allowed``'s token mask inside them.

    ``whole (Bl, Hl, nbq, nbk)`` marks block pairs allowed in full on top of ``allowed`` (block
    top-k's selected blocks), which saves evaluating a per-token rule for them.

    ``allowed`` is only evaluated on the visited pairs, so building costs ``O(N·K·bs)``.
    Raises ``ValueError`` if a query is left with no key (its softmax would be undefined), unless
    ``allow_empty`` (one part of a union, where such rows get zero weight).
    """
    bs, device = block_size, kept.device
    count = int(kept.sum(-1).max())
    order = torch.sort(kept.to(torch.uint8), dim=-1, descending=True, stable=True).indices[..., :count]
    valid = torch.gather(kept, -1, order)  # (Bl, Hl, nbq, K)
    q_idx = torch.arange(kept.shape[-2] * bs, device=device).view(1, 1, -1, bs, 1)  # (1, 1, nbq, bs, 1)
    k_idx = (order[..., None] * bs + torch.arange(bs, device=device)).flatten(-2)[..., None, :]  # (.., nbq, 1, K·bs)
    real_key = (k_idx < num_keys) & valid.repeat_interleave(bs, dim=-1)[..., None, :]
    mask = _evaluate_by_query_blocks(allowed, q_idx.clamp(max=num_queries - 1), k_idx.clamp(max=num_keys - 1))
    if whole is not None:
        mask = mask | torch.gather(whole, -1, order).repeat_interleave(bs, dim=-1)[..., None, :]
    mask = mask & real_key
    padded_query = q_idx >= num_queries
    if not allow_empty and not (mask.any(-1) | padded_query[..., 0]).all():
        raise ValueError("the attention pattern leaves a query with no key to attend to")
    # padded query rows attend to their real keys: their outputs are dropped, and an all-masked
    # row would put NaN into the backward pass
    mask = mask | (padded_query & real_key)
    return BlockLayout(order, mask, bs, num_queries, num_keys)


def block_layout(pattern, num_queries: int, num_keys: int, block_size: int = 64,
                 device: torch.device | str = "cpu", positions: torch.Tensor | None = None,
                 allow_empty: bool = False) -> BlockLayout:
    """The layout of a static ``pattern`` for ``Nq`` queries and ``Nk`` keys (at ``positions (B, N)`` if given)."""
    check_positive(block_size=block_size, num_queries=num_queries, num_keys=num_keys)
    allowed = pattern_rule(pattern, positions)
    kept = kept_blocks(allowed, num_queries, num_keys, block_size, device)
    return layout_from_blocks(kept, allowed, num_queries, num_keys, block_size, allow_empty)
