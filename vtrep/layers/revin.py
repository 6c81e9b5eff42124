"""RevIN: reversible instance normalisation of series (Kim et al., ICLR 2022), as PatchTST uses it."""

from __future__ import annotations

import torch
from torch import nn


class RevIN(nn.Module):
    """Normalise each series per instance and channel, and undo it on the output.

    ``normalise(x)`` stores the mean and the population standard deviation (``sqrt(var + eps)``,
    ``eps = 1e-5``) of ``x (B, C, T)`` over time, then applies an optional per-channel affine map;
    ``denormalise(y)`` inverts both for ``y (B, C, H)``. Statistics are detached, as in PatchTST.

    A constant series (zero variance) has ``std = sqrt(eps)``: it normalises to exactly 0 (the bias,
    when affine) and denormalises back to itself exactly. Series need at least one step.
    """

    def __init__(self, num_channels: int | None = None, eps: float = 1e-5, affine: bool = True) -> None:
        super().__init__()
        if affine and (num_channels is None or num_channels < 1):
            raise ValueError(f"an affine RevIN needs num_channels >= 1, got {num_channels}")
        self.eps, self.affine = eps, affine
        if affine:
            self.weight = nn.Parameter(torch.ones(num_channels))
            self.bias = nn.Parameter(torch.zeros(num_channels))
        self.mean: torch.Tensor | None = None
        self.std: torch.Tensor | None = None

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """``x (B, C, T)`` → normalised ``(B, C, T)``; remembers the statistics for :meth:`denormalise`."""
        # Statistics of x − x[..., :1] (shifted data): a constant series then gives exactly zero
        # deviation and variance at any magnitude, so it normalises to 0 (not NaN / inf, as a sum of
        # huge values would) and denormalises back bit for bit; large offsets also lose less precision.
        if x.ndim != 3 or x.shape[-1] < 1:
            raise ValueError(f"RevIN needs series x (B, C, T) with T >= 1, got shape {tuple(x.shape)}")
        shift = x[..., :1].detach()
        centred = x.detach() - shift
        self.mean = shift + centred.mean(dim=-1, keepdim=True)
        self.std = torch.sqrt(centred.var(dim=-1, keepdim=True, unbiased=False) + self.eps)
        x = (x - self.mean) / self.std
        return x * self.weight[:, None] + self.bias[:, None] if self.affine else x

    def denormalise(self, y: torch.Tensor) -> torch.Tensor:
        """Invert :meth:`normalise` on ``y (B, C, H)`` with the statistics of the last call."""
        if self.mean is None:
            raise RuntimeError("RevIN.denormalise called before normalise")
        if self.affine:
            y = (y - self.bias[:, None]) / (self.weight[:, None] + self.eps * self.eps)
        return y * self.std + self.mean
