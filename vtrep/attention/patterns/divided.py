"""Divided space-time attention (TimeSformer, Bertasius et al., 2021): space-only and time-only patterns."""

from __future__ import annotations

import torch

from vtrep.attention.patterns.base import Pattern


class DividedSpace(Pattern):
    """Attend only within the query's time step (its frame's ``h·w`` tokens).

    Args:
        tokens_per_step: ``h·w`` tokens per temporal slice.
    """

    def allowed(self, q_idx: torch.Tensor, kv_idx: torch.Tensor) -> torch.Tensor:
        return self.time_step(q_idx) == self.time_step(kv_idx)


class DividedTime(Pattern):
    """Attend only to the query's spatial position in every time step (causal: earlier steps only).

    Args:
        tokens_per_step: ``h·w`` tokens per temporal slice.
        causal: keys only from the query's step and earlier ones.
    """

    def allowed(self, q_idx: torch.Tensor, kv_idx: torch.Tensor) -> torch.Tensor:
        return q_idx % self.tokens_per_step == kv_idx % self.tokens_per_step
