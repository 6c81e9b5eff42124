"""TS2Vec's hierarchical contrastive loss (Yue et al., AAAI 2022), used by PITS between complementary views."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _pair_loss(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """Contrast ``z1[:, i]`` with ``z2[:, i]`` against every other row of both: ``z (G, M, D)`` → scalar.

    For each of the ``G`` groups the ``2M`` rows form the candidates; the positive of row ``i`` of one
    view is row ``i`` of the other, and self-similarity is removed. TS2Vec removes the diagonal by
    re-assembling the triangles of the similarity matrix; masking it with −∞ before the softmax is
    the same distribution with fewer copies (equal in ``tests/unit/test_ts2vec.py``).
    """
    m = z1.shape[1]
    z = torch.cat([z1, z2], dim=1)
    sim = z @ z.transpose(1, 2)  # (G, 2M, 2M)
    self_pairs = torch.eye(2 * m, dtype=torch.bool, device=z.device)
    log_prob = F.log_softmax(sim.masked_fill(self_pairs, float("-inf")), dim=-1)
    i = torch.arange(m, device=z.device)
    return -(log_prob[:, i, m + i].mean() + log_prob[:, m + i, i].mean()) / 2


def hierarchical_contrastive_loss(z1: torch.Tensor, z2: torch.Tensor, alpha: float = 0.5,
                                  temporal_unit: int = 0) -> torch.Tensor:
    """Instance- and time-wise contrast of two views ``z (N, L, D)`` at every max-pooled scale of L.

    Instance-wise: at each step, series are contrasted within the batch (needs ``N > 1``);
    temporal: within each series, steps are contrasted across time, from the ``temporal_unit``-th
    scale on (TS2Vec: 0, every scale). ``alpha`` weights the two; the sum is divided by the number of scales.
    """
    if z1.shape != z2.shape:
        raise ValueError(f"views must have the same shape, got {tuple(z1.shape)} and {tuple(z2.shape)}")
    if temporal_unit < 0:
        raise ValueError(f"temporal_unit must be >= 0, got {temporal_unit}")
    loss, depth = z1.new_zeros(()), 0
    while True:
        if alpha and z1.shape[0] > 1:
            loss = loss + alpha * _pair_loss(z1.transpose(0, 1), z2.transpose(0, 1))
        if 1 - alpha and z1.shape[1] > 1 and depth >= temporal_unit:
            loss = loss + (1 - alpha) * _pair_loss(z1, z2)
        depth += 1
        if z1.shape[1] == 1:
            break
        z1 = F.max_pool1d(z1.transpose(1, 2), kernel_size=2).transpose(1, 2)
        z2 = F.max_pool1d(z2.transpose(1, 2), kernel_size=2).transpose(1, 2)
    return loss / depth
