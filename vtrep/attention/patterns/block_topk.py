"""Content-dependent block top-k selection in the spirit of Native Sparse Attention (Yuan et al., 2025).

Keys are compressed per block of ``block`` tokens; each query block scores every compressed
block, keeps its ``top_k`` best and, in addition, every key within its local window. Non-causal,
as an MAE encoder needs.

Where this deviates from NSA, and why:
- Compression is the mean of the block's keys (NSA learns an MLP over them): no extra parameters,
  so a dense checkpoint runs unchanged under this pattern.
- Selection is made per query block from the mean of its queries, shared by the block's tokens
  and per head (NSA selects per query, shared across a GQA group): the blocked backend then
  gathers one key set per query block, which is what makes it cheap.
- Only the selection branch is kept (no compressed-attention branch, no gates): the output is one
  softmax over the selected and local keys. Selection is a hard top-k, so no gradient flows
  through the choice itself (as in NSA's selection branch).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from vtrep.attention.patterns.base import Pattern, check_positive
from vtrep.attention.patterns.local_window import LocalWindow


def block_means(x: torch.Tensor, block: int) -> torch.Tensor:
    """``(B, h, N, d)`` → ``(B, h, ceil(N / block), d)`` means over each block's real tokens."""
    n = x.shape[-2]
    pad = (-n) % block
    sums = F.pad(x, (0, 0, 0, pad)).unflatten(-2, (-1, block)).sum(-2)
    counts = torch.full((sums.shape[-2], 1), float(block), dtype=x.dtype, device=x.device)
    counts[-1] = n - block * (sums.shape[-2] - 1)
    return sums / counts


class BlockTopK(Pattern):
    """Each query block attends to its ``top_k`` highest-scoring key blocks and its ±``window``-step neighbours.

    Args:
        block: tokens per selection block (also the blocked backend's block size).
        top_k: key blocks kept per query block, besides the local window.
        window: local window half-width in time steps.
        tokens_per_step: tokens per time step.
    """

    is_dynamic = True  # the kept blocks come from the queries and keys of each call

    def __init__(self, block: int = 64, top_k: int = 4, window: int = 1, tokens_per_step: int = 1) -> None:
        check_positive(block=block, top_k=top_k, window=window)
        super().__init__(tokens_per_step, causal=False)
        self.block, self.top_k, self.window = block, top_k, window

    def check_length(self, num_keys: int) -> None:
        """Raise ``ValueError`` if ``top_k`` exceeds the number of key blocks of a ``num_keys``-token sequence."""
        blocks = math.ceil(num_keys / self.block)
        if self.top_k > blocks:
            raise ValueError(f"top_k={self.top_k} is larger than the {blocks} key blocks of {num_keys} tokens "
                             f"(block={self.block})")

    def local(self) -> LocalWindow:
        return LocalWindow(self.window, self.tokens_per_step)

    def select(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """``q (B, h, Nq, d)``, ``k (B, h, Nk, d)`` → ``(B, h, nbq, nbk)`` bool, the top-k key blocks per query block."""
        self.check_length(k.shape[-2])
        with torch.no_grad():
            scores = block_means(q, self.block) @ block_means(k, self.block).transpose(-1, -2)
            top = scores.topk(self.top_k, dim=-1).indices
            return torch.zeros_like(scores, dtype=torch.bool).scatter_(-1, top, True)

    def allowed(self, q_idx: torch.Tensor, kv_idx: torch.Tensor) -> torch.Tensor:
        raise TypeError("BlockTopK depends on the queries and keys: call select(q, k) and use selected_rule(...)")

    def selected_rule(self, selected: torch.Tensor, positions: torch.Tensor | None = None):
        """``allowed(q_idx, kv_idx)`` with ``(Bl, Hl)`` leading dims: a selected block, or within the local window.

        ``selected (B, h, nbq, nbk)`` comes from :meth:`select`; the local window is measured on
        ``positions (B, N)`` when given (visible tokens of a masked encoder), else on the indices.
        """
        from vtrep.attention.backends.layout import pattern_rule

        local = pattern_rule(self.local(), positions)
        nbk = selected.shape[-1]
        flat = selected.flatten(-2)

        def allowed(q_idx: torch.Tensor, kv_idx: torch.Tensor) -> torch.Tensor:
            pair = (q_idx // self.block) * nbk + kv_idx // self.block
            shape = torch.broadcast_shapes(pair.shape, flat.shape[:2] + (1,) * (pair.dim() - 2))
            picked = torch.gather(flat, 2, pair.expand(shape).flatten(2)).view(shape)
            return picked | local(q_idx, kv_idx)

        return allowed
