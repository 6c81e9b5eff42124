"""Self-attention and transformer blocks under a sparse pattern, drop-in for timm's.

``PatternSelfAttention`` and ``PatternBlock`` subclass timm's ``Attention`` and ``Block`` and keep
their parameter names (``attn.qkv``, ``attn.proj``, ``norm1``, ``mlp.fc1`` ...), so the weights of a
dense backbone load unchanged into its sparse twin and back. Only the attention kernel changes:
a :class:`~vtrep.attention.attend.PatternAttention` (pattern + backend). ``forward`` takes the
tokens' ``positions (B, N)`` in the full grid when they are a subset of it.
"""

from __future__ import annotations

from functools import partial

import torch
from timm.models.vision_transformer import Attention, Block
from torch import nn

from vtrep.attention.attend import PatternAttention


class PatternSelfAttention(Attention):
    """timm ``Attention`` whose kernel is ``attend``; ``x (B, N, D)`` → ``(B, N, D)``."""

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = False,
                 attend: PatternAttention | None = None, **kwargs) -> None:
        super().__init__(dim, num_heads=num_heads, qkv_bias=qkv_bias, **kwargs)
        if self.attn_drop.p or isinstance(self.norm, nn.LayerNorm) or self.gate is not None:
            raise ValueError("PatternSelfAttention supports neither attention dropout, scale_norm nor gating")
        self.attend = attend or PatternAttention()

    def forward(self, x: torch.Tensor, positions: torch.Tensor | None = None, **_) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        x = self.attend(self.q_norm(q), self.k_norm(k), v, positions)
        return self.proj_drop(self.proj(x.transpose(1, 2).reshape(b, n, self.attn_dim)))


class PatternBlock(Block):
    """timm pre-norm ``Block`` with a :class:`PatternSelfAttention`; ``forward(x, positions=None)``."""

    def __init__(self, dim: int, num_heads: int, attend: PatternAttention, qkv_bias: bool = False,
                 proj_drop: float = 0.0, **kwargs) -> None:
        super().__init__(dim, num_heads, qkv_bias=qkv_bias, proj_drop=proj_drop, **kwargs)
        # timm's attn_layer hook wants a class; swapping the module keeps every other part of Block
        self.attn = PatternSelfAttention(dim, num_heads, qkv_bias=qkv_bias, proj_drop=proj_drop, attend=attend)

    def forward(self, x: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.drop_path1(self.ls1(self.attn(self.norm1(x), positions)))
        return x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))


def run_blocks(blocks, x: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
    """Run ``blocks`` over ``x (B, N, D)``; pattern blocks see ``positions (B, N)`` (``None``: ``0..N-1``).

    Tokens are sorted by position for the pattern blocks (so a local pattern stays block-sparse
    whatever order a masking strategy returns) and put back in their given order at the end.
    """
    if not blocks or not isinstance(blocks[0], PatternBlock):
        for block in blocks:
            x = block(x)
        return x
    order = None
    if positions is not None:
        positions, order = positions.sort(dim=1)
        x = torch.gather(x, 1, order[..., None].expand_as(x))
        if _whole_grid(blocks[0].attn.attend, positions):
            positions = None  # every token of the grid (a decoder): the cached layout applies
    for block in blocks:
        x = block(x, positions)
    if order is not None:
        x = torch.empty_like(x).scatter_(1, order[..., None].expand_as(x), x)
    return x


def _whole_grid(attend: PatternAttention, positions: torch.Tensor) -> bool:
    """Whether sorted ``positions (B, N)`` are ``0..N-1`` in every row.

    Positions are distinct tokens of the grid, so with a known grid size ``attend.num_tokens`` this is
    ``N == num_tokens``, decided on the host; otherwise the values are compared (a device sync).
    """
    if attend.num_tokens is not None:
        return positions.shape[1] == attend.num_tokens
    return bool((positions == torch.arange(positions.shape[1], device=positions.device)).all())


def transformer_blocks(dim: int, depth: int, num_heads: int, mlp_ratio: float, qkv_bias: bool,
                       drop_path_rate: float, norm_eps: float, attend: PatternAttention | None = None) -> nn.ModuleList:
    """``depth`` pre-norm timm blocks with a linearly increasing stochastic-depth rate.

    With ``attend`` they are :class:`PatternBlock` s sharing it (one layout cache for all layers);
    parameter names are timm's either way.
    """
    if dim % num_heads != 0:
        raise ValueError(f"embed_dim={dim} is not divisible by num_heads={num_heads}")
    rates = torch.linspace(0, drop_path_rate, depth).tolist() if depth > 0 else []
    norm = partial(nn.LayerNorm, eps=norm_eps)
    if attend is not None:
        return nn.ModuleList(PatternBlock(dim, num_heads, attend, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                                          drop_path=rate, norm_layer=norm) for rate in rates)
    return nn.ModuleList(
        Block(dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop_path=rate, norm_layer=norm)
        for rate in rates
    )
