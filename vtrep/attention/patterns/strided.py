"""Sparse Transformer's strided pattern (Child et al., 2019): a local band plus every ``stride``-th step."""

from __future__ import annotations

import torch

from vtrep.attention.patterns.base import Pattern, check_positive
from vtrep.attention.patterns.local_window import LocalWindow


class StridedPattern(Pattern):
    """Attend where ``|Δt| < stride`` (the band) or ``Δt ≡ 0 (mod stride)`` (the strided heads), ``Δt = t(q) − t(k)``.

    The paper's two factorised heads are merged into one pattern here (their union), as its
    "interleaved" variant does within one layer. The paper's pattern is causal (``causal=True``);
    the default is the non-causal version an MAE encoder needs.

    Args:
        stride: ``l``, in time steps (Sparse Transformer: about ``sqrt(N)``).
        tokens_per_step: tokens per time step.
        causal: keys only from the query's step and earlier ones.
    """

    def __init__(self, stride: int, tokens_per_step: int = 1, causal: bool = False) -> None:
        check_positive(stride=stride)
        super().__init__(tokens_per_step, causal)
        self.stride = stride

    def allowed(self, q_idx: torch.Tensor, kv_idx: torch.Tensor) -> torch.Tensor:
        delta = self.time_step(q_idx) - self.time_step(kv_idx)
        return (delta.abs() < self.stride) | (delta % self.stride == 0)

    def parts(self, num_tokens: int) -> list[tuple[Pattern, torch.Tensor | None]]:
        """Two disjoint parts whose union is this pattern, each with the token order that makes it block-sparse.

        The band ``|Δt| < stride`` is local in the natural order; the strided part
        ``Δt ≡ 0 (mod stride), Δt ≠ 0`` becomes block-diagonal once tokens are sorted by
        ``t mod stride`` (each residue class contiguous). Keys per query: about
        ``2·stride·tokens_per_step + N / stride`` instead of ``N``.
        """
        if self.stride == 1:  # every pair is allowed: one (dense) part
            return [(self, None)]
        steps = self.time_step(torch.arange(num_tokens))
        order = torch.argsort((steps % self.stride) * num_tokens + torch.arange(num_tokens))
        band = LocalWindow(self.stride - 1, self.tokens_per_step, self.causal)
        return [(band, None), (ResidueClass(self.stride, self.tokens_per_step, self.causal), order)]


class ResidueClass(StridedPattern):
    """``Δt ≡ 0 (mod stride)`` and ``Δt ≠ 0``: the strided part of :class:`StridedPattern` without its band."""

    parts = Pattern.parts  # one part: itself

    def allowed(self, q_idx: torch.Tensor, kv_idx: torch.Tensor) -> torch.Tensor:
        delta = self.time_step(q_idx) - self.time_step(kv_idx)
        return (delta % self.stride == 0) & (delta != 0)
