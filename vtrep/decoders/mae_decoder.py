"""Narrow MAE decoder: encoder tokens plus mask tokens in, predicted patches of masked tokens out."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vtrep.attention.attend import Backend, grid_attention
from vtrep.attention.blocks import PatternBlock, run_blocks, transformer_blocks
from vtrep.attention.patterns.base import Pattern
from vtrep.checks import positive, positive_int
from vtrep.layers.init import init_vit_weights
from vtrep.layers.pos_embed import PosEmbedKind, build_pos_embed
from vtrep.layers.tokens import gather_tokens
from vtrep.masking.base import MaskOutput


@dataclass
class MAEDecoderConfig:
    """Decoder sizes. VideoMAE: depth 4; width 192 with ViT-S, 384 with ViT-B.

    ``attention_*`` as in :class:`~vtrep.backbones.video_vit.VideoViT`: the decoder runs on every
    token of the clip, so on long clips it is where a sparse pattern saves the most.
    ``final_norm_eps`` is the epsilon of the LayerNorm before the head; ``None`` uses the blocks'
    (as the original VideoMAE code does). ``transformers``' VideoMAE decoder keeps PyTorch's default
    ``1e-5`` there whatever its ``layer_norm_eps``, so imported decoders set it.
    """

    dim: int = 192
    depth: int = 4
    num_heads: int = 3
    mlp_ratio: float = 4.0
    attention_pattern: Pattern | None = None
    attention_backend: Backend = "dense"
    attention_block_size: int | None = None
    final_norm_eps: float | None = None


def check_decoder_config(cfg: MAEDecoderConfig) -> None:
    """Sizes a decoder can be built with; messages name the ``decoder.*`` field a YAML config sets."""
    if cfg.depth < 1:
        raise ValueError(f"decoder depth must be >= 1, got {cfg.depth}")
    positive_int("decoder.dim", cfg.dim)
    positive_int("decoder.num_heads", cfg.num_heads)
    if cfg.dim % cfg.num_heads:
        raise ValueError(f"decoder.dim={cfg.dim} is not divisible by decoder.num_heads={cfg.num_heads}")
    positive("decoder.mlp_ratio", cfg.mlp_ratio)
    if cfg.final_norm_eps is not None:
        positive("decoder.final_norm_eps", cfg.final_norm_eps)


class MAEDecoder(nn.Module):
    """VideoMAE's decoder, which does not unshuffle.

    The encoder output is projected (``encoder_to_decoder``, no bias), given the decoder's own
    positional embedding gathered at ``ids_keep``; mask tokens get the embedding gathered at
    ``ids_mask``; the sequence ``[visible, masked]`` runs through the blocks and only the last
    ``Nm`` outputs are projected to pixels. Attention is permutation-equivariant, so this equals
    MAE-ST's unshuffle-then-predict-all followed by selecting masked tokens, at lower cost.

    Args:
        encoder_dim: width of the encoder tokens.
        patch_dim: ``P``, values predicted per token.
        grid: token grid ``(t, h, w)``.
        config: decoder sizes.
        pos_embed: ``"sincos"`` (VideoMAE) or ``"separable"`` (MAE-ST).
        norm_eps: LayerNorm epsilon.
    """

    def __init__(self, encoder_dim: int, patch_dim: int, grid: tuple[int, int, int],
                 config: MAEDecoderConfig | None = None, pos_embed: PosEmbedKind = "sincos",
                 norm_eps: float = 1e-6) -> None:
        super().__init__()
        cfg = config or MAEDecoderConfig()
        check_decoder_config(cfg)
        self.encoder_to_decoder = nn.Linear(encoder_dim, cfg.dim, bias=False)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.pos_embed = build_pos_embed(pos_embed, cfg.dim, grid)
        attend = grid_attention(cfg.attention_pattern, cfg.attention_backend, cfg.attention_block_size, grid)
        self.blocks = transformer_blocks(cfg.dim, cfg.depth, cfg.num_heads, cfg.mlp_ratio, True, 0.0, norm_eps, attend)
        self.norm = nn.LayerNorm(cfg.dim, eps=norm_eps if cfg.final_norm_eps is None else cfg.final_norm_eps)
        self.head = nn.Linear(cfg.dim, patch_dim)
        self.apply(init_vit_weights)
        nn.init.trunc_normal_(self.mask_token, std=0.02)

    def forward(self, latent: torch.Tensor, mask: MaskOutput) -> torch.Tensor:
        """``latent (B, Nv, D_enc)`` in ``ids_keep`` order -> predictions ``(B, Nm, P)`` in ``ids_mask`` order.

        Slots of ``ids_mask`` that ``mask.valid`` marks as padding are masked out as attention keys.
        """
        x = self.encoder_to_decoder(latent)
        batch = x.shape[0]
        pos = self.pos_embed().to(x.dtype).expand(batch, -1, -1)
        visible = x + gather_tokens(pos, mask.ids_keep)
        masked = self.mask_token.to(x.dtype) + gather_tokens(pos, mask.ids_mask)
        x = torch.cat([visible, masked], dim=1)
        attn_mask = None
        if mask.valid is not None and not bool(mask.valid.all()):
            # Padding slots (dual masking) must not be attended to; their own outputs are discarded.
            keys = torch.cat([mask.valid.new_ones(batch, visible.shape[1]), mask.valid], dim=1)
            attn_mask = keys[:, None, None, :]
        if isinstance(self.blocks[0], PatternBlock):
            if attn_mask is not None:
                raise ValueError("a sparse decoder does not support padded mask slots (dual masking); "
                                 "use full attention in the decoder")
            x = run_blocks(self.blocks, x, torch.cat([mask.ids_keep, mask.ids_mask], dim=1))
        else:
            for block in self.blocks:
                x = block(x, attn_mask=attn_mask)
        return self.head(self.norm(x[:, -mask.num_masked:]))
