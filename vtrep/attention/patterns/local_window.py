"""Local temporal window: a token attends to every token within ±``window`` time steps."""

from __future__ import annotations

import torch

from vtrep.attention.patterns.base import Pattern, check_positive


class LocalWindow(Pattern):
    """``|t(q) − t(k)| ≤ window`` with ``t(i) = i // tokens_per_step`` (causal: ``0 ≤ t(q) − t(k) ≤ window``).

    Args:
        window: half-width ``w`` in time steps (frames' token slices for video, patches for series).
        tokens_per_step: tokens per time step.
        causal: keys only from the query's step and earlier ones.
    """

    def __init__(self, window: int, tokens_per_step: int = 1, causal: bool = False) -> None:
        check_positive(window=window)
        super().__init__(tokens_per_step, causal)
        self.window = window

    def allowed(self, q_idx: torch.Tensor, kv_idx: torch.Tensor) -> torch.Tensor:
        return (self.time_step(q_idx) - self.time_step(kv_idx)).abs() <= self.window
