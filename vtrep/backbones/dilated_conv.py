"""TS2Vec's encoder (Yue et al., AAAI 2022): a per-step input projection and residual dilated convolutions.

Unlike the patch encoders, it keeps full time resolution and mixes channels: series ``(B, C, T)`` →
per-step representations ``(B, T, D)``. Steps that are NaN (variable-length padding) or masked
out are zeroed after the input projection, as in TS2Vec's ``TSEncoder``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vtrep.checks import fraction
from vtrep.io.init_args import RecordsInitArgs


class SamePadConv(nn.Module):
    """``Conv1d`` whose output has the input's length for any dilation (one step trimmed for an even field)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1) -> None:
        super().__init__()
        field = (kernel_size - 1) * dilation + 1
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, padding=field // 2, dilation=dilation)
        self.trim = 1 if field % 2 == 0 else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return out[..., :-self.trim] if self.trim else out


class DilatedConvBlock(nn.Module):
    """``x + conv2(gelu(conv1(gelu(x))))``, with a 1×1 projection on the residual where widths differ or last."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int, final: bool) -> None:
        super().__init__()
        self.conv1 = SamePadConv(in_channels, out_channels, kernel_size, dilation)
        self.conv2 = SamePadConv(out_channels, out_channels, kernel_size, dilation)
        needs_projection = in_channels != out_channels or final
        self.projector = nn.Conv1d(in_channels, out_channels, 1) if needs_projection else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.projector is None else self.projector(x)
        return self.conv2(F.gelu(self.conv1(F.gelu(x)))) + residual


class DilatedConvEncoder(RecordsInitArgs, nn.Module):
    """TS2Vec's ``TSEncoder``: ``Linear(C, hidden)`` per step → mask → ``depth`` + 1 dilated blocks → dropout.

    Block ``i`` has dilation ``2**i``; the last block widens to ``output_dim``. Input ``x (B, C, T)``
    (vtrep's series axes; TS2Vec takes ``(B, T, C)``), output ``(B, T, D)`` with ``D = output_dim``.

    Args:
        input_channels: ``C``.
        output_dim: representation width ``D`` (TS2Vec: 320).
        hidden_dim: width of the hidden blocks (64).
        depth: hidden residual blocks (10).
        kernel_size: convolution kernel (3).
        dropout: dropout on the output representation (0.1).

    ``config`` records these arguments (:mod:`vtrep.io.init_args`), so ``save_pretrained`` can save it.
    """

    def __init__(self, input_channels: int = 1, output_dim: int = 320, hidden_dim: int = 64, depth: int = 10,
                 kernel_size: int = 3, dropout: float = 0.1) -> None:
        super().__init__()
        for name, value in {"input_channels": input_channels, "output_dim": output_dim, "hidden_dim": hidden_dim,
                            "depth": depth, "kernel_size": kernel_size}.items():
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        fraction("dropout", dropout)
        self.input_channels, self.embed_dim = input_channels, output_dim
        self.input_fc = nn.Linear(input_channels, hidden_dim)
        widths = [hidden_dim] * depth + [output_dim]
        self.blocks = nn.Sequential(*(
            DilatedConvBlock(widths[i - 1] if i else hidden_dim, widths[i], kernel_size, 2 ** i, i == depth)
            for i in range(depth + 1)))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """``x (B, C, T)`` (NaN where missing), ``keep (B, T)`` bool or None (all kept) → ``(B, T, D)``."""
        if x.ndim != 3 or x.shape[1] != self.input_channels:
            raise ValueError(f"expected series (B, {self.input_channels}, T), got {tuple(x.shape)}")
        x = x.transpose(1, 2)
        observed = ~torch.isnan(x).any(dim=-1)
        hidden = self.input_fc(torch.nan_to_num(x, nan=0.0))
        keep = observed if keep is None else keep & observed
        hidden = hidden * keep.unsqueeze(-1)
        return self.dropout(self.blocks(hidden.transpose(1, 2))).transpose(1, 2)
