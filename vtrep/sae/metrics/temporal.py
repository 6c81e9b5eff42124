"""Temporal concept metrics of SAE latents: coherence in time, position coding, static vs dynamic.

Axes: ``n`` tokens, ``K`` latents, ``T`` temporal positions; clips are ``B C T H W``, series ``B C T``.
Every token has its metadata: ``item`` (the clip or series), ``position`` (its temporal index: video
``t``, series ``patch`` or step) and its ``site`` (where it is within that temporal position: video
``(h, w)``, series ``channel``). ``a_k`` is latent ``k``'s code on a token. All functions are pure;
the accumulators take any number of chunks (a chunk must hold whole items for coherence).

**Temporal coherence** (:class:`CoherenceAccumulator`, :func:`temporal_coherence`). Over every pair of
tokens of the same item and site at adjacent positions ``(p, p + 1)``, ``x = a_k`` at ``p`` and
``y = a_k`` at ``p + 1``; the coherence is their Pearson correlation
``ρ_k = cov(x, y) / sqrt(var(x) · var(y))`` over all pairs. ``1`` for a latent that is constant in time
within each (item, site) but varies across them; near ``0`` for one that flickers independently from
step to step; ``NaN`` where ``x`` or ``y`` has no variance (e.g. a dead latent).

**Position coding** (:class:`PositionAccumulator`, :func:`position_eta2`). The correlation ratio of the
latent's code on the token's full position (video ``(t, h, w)``, series ``(channel, patch)``):
``η²_k = Σ_g n_g (m_gk − m_k)² / Σ_i (a_ik − m_k)²``, ``g`` the positions, ``n_g`` their token counts,
``m_gk`` the latent's mean at ``g`` and ``m_k`` its mean over all tokens, i.e. ``Var(E[a | position]) /
Var(a)``. ``1`` when the code is a function of the position alone, ``0`` when its mean is the same at every
position; ``NaN`` for a latent with no variance. Position-coded: ``η² ≥`` :data:`POSITION_CODED`.

**Static vs dynamic** (:func:`freeze_motion`, :func:`shuffle_order`, :func:`response_scores`,
:func:`temporal_classes`). The latent's mean absolute code over all tokens of a set of items,
``m_k(X) = mean |a_k|``, on the items as they are (``X``), with motion removed (``X_frozen``: every
frame replaced by the middle frame ``T // 2``; series: every step by the middle step's value, per
channel) and with order removed (``X_shuffled``: the frames permuted at random; series: the series cut
into blocks of the encoder's patch stride, counted from the end, and the blocks permuted — the first
``T mod stride`` steps stay). Scores, for a latent with ``m_k(X) > 0``:

- ``dynamic_score = (m_k(X) − m_k(X_frozen)) / m_k(X)``: the share of its activity that needs motion
  (``1``: silent on a still clip; ``0``: indifferent; ``< 0``: fires more when nothing moves);
- ``order_score = (m_k(X) − m_k(X_shuffled)) / m_k(X)``: likewise for the order of frames.

Classes: ``silent`` (``m_k(X) = 0``: no activity on these items), ``dynamic`` (``dynamic_score ≥``
:data:`DYNAMIC`), ``still``
(``dynamic_score ≤ −DYNAMIC``: a stillness detector), ``static`` (``|dynamic_score| <`` :data:`STATIC`), else
``mixed``; ``order-sensitive`` separately where ``order_score ≥`` :data:`DYNAMIC`.
"""

from __future__ import annotations

import torch

POSITION_CODED = 0.5  # η² at or above which a latent is position-coded
DYNAMIC = 0.5  # |dynamic_score| at or above which a latent is dynamic (or still)
STATIC = 0.2  # |dynamic_score| below which a latent is static
CLASSES = ("dynamic", "static", "still", "mixed", "silent")


def _ids(cells: torch.Tensor) -> torch.Tensor:
    """One integer per row of ``cells`` (``(n,)`` or ``(n, c)``): equal rows, equal ids."""
    if cells.dim() == 1:
        return cells.long()
    return torch.unique(cells.long(), dim=0, return_inverse=True)[1]


def adjacent_pairs(item: torch.Tensor, position: torch.Tensor, site: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows ``(first, second)`` of token pairs of one item and site at positions ``p`` and ``p + 1``."""
    item, position, site = item.long(), position.long(), _ids(site)
    order = torch.arange(len(item))
    for key in (position, site, item):  # stable sorts, last key first: order by (item, site, position)
        order = order[torch.sort(key[order], stable=True).indices]
    i, p, s = item[order], position[order], site[order]
    adjacent = (i[1:] == i[:-1]) & (s[1:] == s[:-1]) & (p[1:] == p[:-1] + 1)
    return order[:-1][adjacent], order[1:][adjacent]


class CoherenceAccumulator:
    """Streaming temporal coherence: sums over adjacent pairs, float64."""

    def __init__(self, num_latents: int) -> None:
        self.sums = torch.zeros(5, num_latents, dtype=torch.float64)  # x, y, x², y², xy
        self.pairs = 0

    def update(self, codes: torch.Tensor, item: torch.Tensor, position: torch.Tensor, site: torch.Tensor) -> None:
        """``codes (n, K)`` of tokens with their ``item, position (n,)`` and ``site (n,)`` or ``(n, S)``;
        items must not be split between calls."""
        first, second = adjacent_pairs(item, position, site)
        x, y = codes[first].double(), codes[second].double()
        self.sums += torch.stack([x.sum(0), y.sum(0), (x * x).sum(0), (y * y).sum(0), (x * y).sum(0)])
        self.pairs += len(first)

    def result(self) -> torch.Tensor:
        """``ρ (K,)``, NaN where undefined."""
        n = max(self.pairs, 1)
        sx, sy, sxx, syy, sxy = self.sums / n
        cov, vx, vy = sxy - sx * sy, (sxx - sx * sx).clamp_min(0), (syy - sy * sy).clamp_min(0)
        denominator = (vx * vy).sqrt()
        defined = (denominator > 1e-12 * (sxx.abs() + syy.abs() + 1e-30)) & (self.pairs > 0)
        out = torch.where(defined, cov / denominator.clamp_min(1e-300), torch.full_like(cov, float("nan")))
        return out.clamp(-1, 1).float()


def temporal_coherence(codes: torch.Tensor, item: torch.Tensor, position: torch.Tensor,
                       site: torch.Tensor) -> torch.Tensor:
    """Temporal coherence ``(K,)`` of ``codes (n, K)`` in one go (see the module docstring)."""
    acc = CoherenceAccumulator(codes.shape[1])
    acc.update(codes, item, position, site)
    return acc.result()


class PositionAccumulator:
    """Streaming correlation ratio on position: per-position counts and sums, total sum and sum of squares."""

    def __init__(self, num_latents: int) -> None:
        self.index: dict[tuple[int, ...], int] = {}
        self.counts = torch.zeros(0, dtype=torch.float64)
        self.sums = torch.zeros(0, num_latents, dtype=torch.float64)
        self.total = torch.zeros(num_latents, dtype=torch.float64)
        self.squares = torch.zeros(num_latents, dtype=torch.float64)

    def update(self, codes: torch.Tensor, cells: torch.Tensor) -> None:
        """``codes (n, K)`` and each token's position ``cells (n, c)`` (video ``t, h, w``; series ``channel, patch``)."""
        unique, inverse = torch.unique(cells.long().reshape(len(cells), -1), dim=0, return_inverse=True)
        for row in unique.tolist():
            self.index.setdefault(tuple(row), len(self.index))
        grow = len(self.index) - len(self.counts)
        if grow:
            self.counts = torch.cat([self.counts, torch.zeros(grow, dtype=torch.float64)])
            self.sums = torch.cat([self.sums, torch.zeros(grow, self.sums.shape[1], dtype=torch.float64)])
        groups = torch.tensor([self.index[tuple(row)] for row in unique.tolist()], dtype=torch.long)[inverse]
        values = codes.double()
        self.counts.index_add_(0, groups, torch.ones(len(groups), dtype=torch.float64))
        self.sums.index_add_(0, groups, values)
        self.total += values.sum(0)
        self.squares += (values * values).sum(0)

    def result(self) -> torch.Tensor:
        """``η² (K,)``, NaN for a latent without variance."""
        n = self.counts.sum()
        if n == 0:
            return torch.full_like(self.total, float("nan")).float()
        mean = self.total / n
        group_means = self.sums / self.counts.clamp_min(1)[:, None]
        between = (self.counts[:, None] * (group_means - mean) ** 2).sum(0)
        total = (self.squares - n * mean * mean).clamp_min(0)
        defined = total > 1e-12 * (self.squares + 1e-30)
        out = torch.where(defined, between / total.clamp_min(1e-300), torch.full_like(total, float("nan")))
        return out.clamp(0, 1).float()


def position_eta2(codes: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """Correlation ratio ``η² (K,)`` of ``codes (n, K)`` on the tokens' positions ``cells (n, c)``, in one go."""
    acc = PositionAccumulator(codes.shape[1])
    acc.update(codes, cells)
    return acc.result()


def freeze_motion(x: torch.Tensor, time_dim: int = 2, index: int | None = None) -> torch.Tensor:
    """``x`` with every step along ``time_dim`` replaced by step ``index`` (default the middle, ``T // 2``)."""
    steps = x.shape[time_dim]
    index = steps // 2 if index is None else index
    return x.narrow(time_dim, index, 1).expand_as(x).contiguous()


def shuffle_order(x: torch.Tensor, generator: torch.Generator, time_dim: int = 2, block: int = 1) -> torch.Tensor:
    """``x`` with its blocks of ``block`` steps along ``time_dim`` (counted from the end) randomly permuted;
    the permutation is never the identity when there are two blocks or more; the first ``T mod block`` stay."""
    steps = x.shape[time_dim]
    count, lead = steps // block, steps % block
    if count < 2:
        return x.clone()
    order = torch.randperm(count, generator=generator)
    while bool((order == torch.arange(count)).all()):
        order = torch.randperm(count, generator=generator)
    index = torch.cat([torch.arange(lead), (lead + order[:, None] * block + torch.arange(block)).flatten()])
    return x.index_select(time_dim, index.to(x.device))


def response_scores(original: torch.Tensor, frozen: torch.Tensor, shuffled: torch.Tensor) -> dict[str, torch.Tensor]:
    """``dynamic_score`` and ``order_score (K,)`` from each latent's mean |code| on the items as they are,
    with motion removed and with order removed (NaN where the latent is silent on the items as they are)."""
    live = original > 0
    base = original.clamp_min(1e-30)
    nan = torch.full_like(original, float("nan"))
    return {"dynamic_score": torch.where(live, (original - frozen) / base, nan),
            "order_score": torch.where(live, (original - shuffled) / base, nan)}


def temporal_classes(dynamic_score: torch.Tensor) -> list[str]:
    """``dynamic`` / ``static`` / ``still`` / ``mixed`` per latent, ``silent`` where the score is NaN."""
    out = []
    for value in dynamic_score.tolist():
        if value != value:
            out.append("silent")
        elif value >= DYNAMIC:
            out.append("dynamic")
        elif value <= -DYNAMIC:
            out.append("still")
        elif abs(value) < STATIC:
            out.append("static")
        else:
            out.append("mixed")
    return out
