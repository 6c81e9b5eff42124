"""Sparse Transformer's fixed pattern (Child et al., 2019): own block plus the blocks' summary steps."""

from __future__ import annotations

import torch

from vtrep.attention.patterns.base import Pattern, check_positive


class FixedPattern(Pattern):
    """Attend to the query's own block of ``block`` steps, and to the last ``summary`` steps of every block.

    Args:
        block: ``l``, block length in time steps.
        summary: ``c``, summary steps per block (``1 ≤ c ≤ l``; the paper uses 8–32 of 128).
        tokens_per_step: tokens per time step.
        causal: keys only from the query's step and earlier ones (the paper's setting).
    """

    def __init__(self, block: int, summary: int = 1, tokens_per_step: int = 1, causal: bool = False) -> None:
        check_positive(block=block, summary=summary)
        if summary > block:
            raise ValueError(f"summary={summary} must be <= block={block}")
        super().__init__(tokens_per_step, causal)
        self.block, self.summary = block, summary

    def allowed(self, q_idx: torch.Tensor, kv_idx: torch.Tensor) -> torch.Tensor:
        tq, tk = self.time_step(q_idx), self.time_step(kv_idx)
        return (tq // self.block == tk // self.block) | (tk % self.block >= self.block - self.summary)

    def parts(self, num_tokens: int) -> list[tuple[Pattern, torch.Tensor | None]]:
        """Own block (local in time order) and other blocks' summaries (contiguous once summary steps go first).

        Keys per query: about ``block·tokens_per_step + N·summary / block`` instead of ``N``.
        """
        steps = self.time_step(torch.arange(num_tokens))
        is_summary = steps % self.block >= self.block - self.summary
        order = torch.argsort((~is_summary).long() * num_tokens + torch.arange(num_tokens))
        own = OwnBlock(self.block, self.tokens_per_step, self.causal)
        return [(own, None), (OtherSummaries(self.block, self.summary, self.tokens_per_step, self.causal), order)]


class OwnBlock(Pattern):
    """Same block of ``block`` steps: the first part of :class:`FixedPattern`."""

    def __init__(self, block: int, tokens_per_step: int = 1, causal: bool = False) -> None:
        check_positive(block=block)
        super().__init__(tokens_per_step, causal)
        self.block = block

    def allowed(self, q_idx: torch.Tensor, kv_idx: torch.Tensor) -> torch.Tensor:
        return self.time_step(q_idx) // self.block == self.time_step(kv_idx) // self.block


class OtherSummaries(FixedPattern):
    """Summary steps of the other blocks: the second part of :class:`FixedPattern`, disjoint from the first."""

    parts = Pattern.parts  # one part: itself

    def allowed(self, q_idx: torch.Tensor, kv_idx: torch.Tensor) -> torch.Tensor:
        tq, tk = self.time_step(q_idx), self.time_step(kv_idx)
        return (tq // self.block != tk // self.block) & (tk % self.block >= self.block - self.summary)
