"""SAE quality metrics, each with its definition (libraries differ; these are the ones vtrep logs).

Accumulated over any number of batches of raw inputs ``x (n, d)``, reconstructions ``x̂`` and
codes ``(n, K)``:

- ``l0``: mean number of non-zero codes per input.
- ``mse``: mean of ``(x − x̂)²`` over all ``n·d`` entries (raw input units).
- ``fvu``: fraction of variance unexplained, ``Σ‖x − x̂‖² / Σ‖x − x̄‖²`` with ``x̄`` the mean input over
  everything seen (error relative to the total variance — not to ``Σ‖x‖²``, which flatters a
  model whenever the inputs have a large mean); ``explained_variance = 1 − fvu``.
- ``cosine``: mean over inputs of ``cos(x, x̂)``.
- ``dead_fraction``: latents that never fired on the inputs seen; ``dense_fraction``: latents firing
  on more than ``dense_threshold`` (10%) of them.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F


class SAEMetrics:
    """Streaming accumulator: :meth:`update` per batch, :meth:`compute` at the end.

    Args:
        num_latents: ``K``.
        dense_threshold: firing rate above which a latent counts as dense.
    """

    def __init__(self, num_latents: int, dense_threshold: float = 0.1) -> None:
        if not 0 < dense_threshold <= 1:
            raise ValueError(f"dense_threshold must be a firing rate in (0, 1], got {dense_threshold!r}")
        self.num_latents, self.dense_threshold = num_latents, dense_threshold
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.squared_error = 0.0
        self.sum = self.sum_sq = None
        self.cosine = 0.0
        self.active = 0.0
        self.fired = torch.zeros(self.num_latents, dtype=torch.long)

    @torch.no_grad()
    def update(self, x: torch.Tensor, x_hat: torch.Tensor, codes: torch.Tensor) -> None:
        x, x_hat = x.double(), x_hat.double()
        self.count += x.shape[0]
        self.squared_error += float((x - x_hat).pow(2).sum())
        self.sum = x.sum(0) if self.sum is None else self.sum + x.sum(0)
        self.sum_sq = x.pow(2).sum(0) if self.sum_sq is None else self.sum_sq + x.pow(2).sum(0)
        self.cosine += float(F.cosine_similarity(x, x_hat, dim=1).sum())
        nonzero = codes != 0
        self.active += float(nonzero.sum())
        self.fired += nonzero.sum(0).cpu()

    def state(self) -> torch.Tensor:
        """Every running sum as one float64 vector, so ranks can add theirs with one all-reduce."""
        width = 0 if self.sum is None else self.sum.numel()
        sums = torch.zeros(width) if self.sum is None else self.sum.cpu()
        sum_sq = torch.zeros(width) if self.sum_sq is None else self.sum_sq.cpu()
        head = torch.tensor([self.count, self.squared_error, self.cosine, self.active, width], dtype=torch.float64)
        return torch.cat([head, sums.double(), sum_sq.double(), self.fired.double()])

    def sync(self, all_reduce_sum: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Replace this rank's sums by the sums over all ranks (``all_reduce_sum`` adds a tensor across them).

        Every rank must have seen inputs (their width is part of the state).
        """
        local = self.state()
        total = all_reduce_sum(local).cpu().double()
        width = int(local[4])
        if total.shape != local.shape:
            raise ValueError(f"the reduced state has shape {tuple(total.shape)}, this rank's {tuple(local.shape)}")
        self.count, self.squared_error, self.cosine, self.active = int(total[0]), *map(float, total[1:4])
        self.sum, self.sum_sq = total[5:5 + width], total[5 + width:5 + 2 * width]
        self.fired = total[5 + 2 * width:].round().long()

    def compute(self) -> dict[str, float]:
        if self.count == 0:
            raise ValueError("no inputs seen: call update() first")
        n, d = self.count, self.sum.numel()
        total_variance = float((self.sum_sq - self.sum.pow(2) / n).sum())
        fvu = self.squared_error / max(total_variance, 1e-30)
        rate = self.fired.double() / n
        return {"l0": self.active / n, "mse": self.squared_error / (n * d), "fvu": fvu,
                "explained_variance": 1.0 - fvu, "cosine": self.cosine / n,
                "dead_fraction": float((self.fired == 0).double().mean()),
                "dense_fraction": float((rate > self.dense_threshold).double().mean())}


@torch.no_grad()
def dictionary_recovery(decoder: torch.Tensor, atoms: torch.Tensor) -> float:
    """Mean over true ``atoms (A, d)`` of the best cosine with any learned decoder row ``(K, d)``."""
    cosines = F.normalize(atoms.double(), dim=1) @ F.normalize(decoder.double(), dim=1).t()
    return float(cosines.max(dim=1).values.mean())
