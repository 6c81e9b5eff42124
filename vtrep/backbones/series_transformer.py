"""PatchTST-style channel-independent transformer over series patches (Nie et al., ICLR 2023)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from vtrep.attention.attend import Backend, PatternAttention, grid_attention
from vtrep.attention.patterns.base import Pattern
from vtrep.checks import fraction, non_negative_int, positive, positive_int
from vtrep.io.init_args import RecordsInitArgs
from vtrep.layers.series_patch import patch_geometry

NormKind = Literal["batch", "layer"]


class TokenBatchNorm(nn.Module):
    """BatchNorm1d over the width of tokens ``(N, Np, D)`` (PatchTST's ``Transpose`` + ``BatchNorm1d``)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


def make_norm(kind: NormKind, dim: int) -> nn.Module:
    if kind == "batch":
        return TokenBatchNorm(dim)
    if kind == "layer":
        return nn.LayerNorm(dim)
    raise ValueError(f"norm must be 'batch' or 'layer', got {kind!r}")


class SeriesTransformerBlock(nn.Module):
    """Post-norm encoder layer as in PatchTST: ``x = norm(x + attn(x))``, ``x = norm(x + ffn(x))``.

    With ``residual_attention`` the pre-softmax scores of the layer below are added to this layer's
    (PatchTST's ``res_attention``); the layer returns its scores for the next one. ``proj_dropout`` drops the
    attention's projected output before the residual branch's own ``dropout`` (PatchTST's ``to_out`` dropout).
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, dropout: float, norm: NormKind,
                 attend: PatternAttention | None = None, residual_attention: bool = False,
                 proj_dropout: float = 0.0) -> None:
        super().__init__()
        self.attend = attend or PatternAttention()
        self.residual_attention = residual_attention
        if dim % num_heads:
            raise ValueError(f"d_model={dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        hidden = int(dim * mlp_ratio)
        self.ffn = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim))
        self.norm_attn, self.norm_ffn = make_norm(norm, dim), make_norm(norm, dim)
        self.dropout = nn.Dropout(dropout)
        # Identity at 0, so the random stream (and the results) of the default encoder stay as they were
        self.proj_dropout = nn.Dropout(proj_dropout) if proj_dropout else nn.Identity()

    def forward(self, x: torch.Tensor, prev_scores: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x (N, Np, D)`` → ``(N, Np, D)`` and, with residual attention, the scores ``(N, heads, Np, Np)``."""
        n, length, dim = x.shape
        q, k, v = self.qkv(x).view(n, length, 3, self.num_heads, dim // self.num_heads).permute(2, 0, 3, 1, 4)
        scores = None
        if self.residual_attention:
            scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
            if prev_scores is not None:
                scores = scores + prev_scores
            attn = scores.softmax(dim=-1) @ v
        else:
            attn = self.attend(q, k, v)
        projected = self.proj_dropout(self.proj(attn.transpose(1, 2).reshape(n, length, dim)))
        x = self.norm_attn(x + self.dropout(projected))
        return self.norm_ffn(x + self.dropout(self.ffn(x))), scores


class PatchTSTEncoder(RecordsInitArgs, nn.Module):
    """Shared patch embedding, learnable positions and post-norm blocks, each channel on its own.

    Patches ``(B, C, Np, P)`` → tokens ``(B, C, Np, D)``. Channel independence: the ``C`` channels
    are ``B·C`` separate sequences through the same weights. PatchTST's residual attention (scores
    carried between layers, its default) is an option, off by default (the self-supervised configs use
    plain attention). PatchTST applies dropout twice to the attention output (its projection's
    ``proj_dropout`` and the residual branch's, both ``dropout`` in its encoder layers); here the first is
    ``proj_dropout``, 0 by default (the residual dropout alone).

    Args:
        context_length: series length ``T`` the encoder is built for (sets ``Np``).
        patch_length: ``P`` (PatchTST self-supervised: 12).
        stride: ``S`` (pretraining: equal to ``P``, non-overlapping).
        d_model: width ``D`` (128).
        depth: encoder layers (3).
        num_heads: attention heads (16).
        mlp_ratio: feed-forward width over ``D`` (PatchTST: 512 / 128 = 4).
        dropout: dropout in attention output, feed-forward and after the embedding (0.2).
        norm: ``batch`` (PatchTST default) or ``layer``.
        attention_pattern: a sparse pattern over patches (``vtrep.attention``; e.g. ``LocalWindow`` or,
            for forecasting, ``causal=True``), or ``None`` for full attention.
        attention_backend: ``dense`` (reference), ``blocked`` (training on any device) or ``flex`` (GPU).
        attention_block_size: patches per block of the blocked / flex kernels.
        pad_end: pad the series with ``stride`` copies of its last step before patching (PatchTST's supervised
            ``padding_patch='end'``: 512 steps, patches of 16, stride 8 → 64 patches, "PatchTST/64").
        residual_attention: add the layer below's attention scores before the softmax (PatchTST's
            ``res_attention``); full attention only.
        proj_dropout: dropout of the attention's projected output, before the residual dropout (PatchTST's
            ``proj_dropout``, which it sets to ``dropout``); 0 applies none.

    ``config`` records these arguments (:mod:`vtrep.io.init_args`; the pattern as its own record).
    """

    def __init__(self, context_length: int = 336, patch_length: int = 12, stride: int = 12, d_model: int = 128,
                 depth: int = 3, num_heads: int = 16, mlp_ratio: float = 4.0, dropout: float = 0.2,
                 norm: NormKind = "batch", attention_pattern: Pattern | None = None,
                 attention_backend: Backend = "dense", attention_block_size: int | None = None,
                 pad_end: bool = False, residual_attention: bool = False, proj_dropout: float = 0.0) -> None:
        super().__init__()
        patch_geometry(self, context_length, patch_length, stride, pad_end)
        if residual_attention and attention_pattern is not None:
            raise ValueError("residual_attention carries full score matrices between layers; it cannot be "
                             f"combined with attention_pattern={type(attention_pattern).__name__}")
        for name, value in (("d_model", d_model), ("num_heads", num_heads)):
            positive_int(name, value)
        non_negative_int("depth", depth)
        positive("mlp_ratio", mlp_ratio)
        fraction("dropout", dropout)
        fraction("proj_dropout", proj_dropout)
        attend = grid_attention(attention_pattern, attention_backend, attention_block_size, (self.num_patches, 1, 1))
        self.embed_dim = d_model
        self.patch_embed = nn.Linear(patch_length, d_model)
        self.pos_embed = nn.Parameter(torch.empty(self.num_patches, d_model).uniform_(-0.02, 0.02))
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(SeriesTransformerBlock(d_model, num_heads, mlp_ratio, dropout, norm, attend,
                                                           residual_attention, proj_dropout) for _ in range(depth))

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """Patches ``(B, C, Np, P)`` → tokens of the last block ``(B, C, Np, D)``."""
        return self.forward_layers(patches)[-1]

    def forward_layers(self, patches: torch.Tensor) -> list[torch.Tensor]:
        """Tokens after the embedding and after every block: ``depth + 1`` tensors ``(B, C, Np, D)``."""
        batch, channels, count, length = patches.shape
        if (count, length) != (self.num_patches, self.patch_length):
            raise ValueError(f"expected {self.num_patches} patches of length {self.patch_length}, got {count} of {length}")
        x = self.dropout(self.patch_embed(patches.reshape(batch * channels, count, length)) + self.pos_embed)
        layers, scores = [x], None
        for block in self.blocks:
            x, scores = block(x, scores)
            layers.append(x)
        return [layer.view(batch, channels, count, -1) for layer in layers]

