"""Token selection shared by encoders, decoders and objectives."""

from __future__ import annotations

import torch


def gather_tokens(x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Select tokens ``ids (B, n)`` from ``x (B, N, ...)`` giving ``(B, n, ...)``."""
    index = ids.view(*ids.shape, *([1] * (x.ndim - 2))).expand(-1, -1, *x.shape[2:])
    return torch.gather(x, 1, index)
