"""Video ViT encoder: tubelet embedding, positional embedding, timm transformer blocks.

``forward_features(video, ids_keep)`` runs the encoder on every token, or — for masked
pretraining — only on the visible tokens ``ids_keep`` (the patch embedding itself is computed
for those tokens only). ``pool`` averages tokens into one feature per clip, as VideoMAE's
mean-pooling head does.
"""

from __future__ import annotations

import torch
from torch import nn

from vtrep.attention.attend import Backend, grid_attention
from vtrep.attention.blocks import PatternBlock, run_blocks, transformer_blocks
from vtrep.attention.patterns.base import Pattern
from vtrep.checks import positive, positive_int
from vtrep.io.init_args import RecordsInitArgs
from vtrep.layers.init import init_vit_weights
from vtrep.layers.patch_embed import TubeletEmbed
from vtrep.layers.pos_embed import PosEmbedKind, build_pos_embed
from vtrep.layers.tokens import gather_tokens


class VideoViT(RecordsInitArgs, nn.Module):
    """Vision transformer over spacetime tokens.

    Args:
        img_size: square frame side ``H = W``; must be a multiple of ``patch_size``.
        num_frames: clip length ``T``; must be a multiple of ``tubelet_size``.
        patch_size: spatial patch side (16 in VideoMAE and MAE-ST).
        tubelet_size: frames per token (2 in both).
        in_chans: colour channels.
        embed_dim: token width ``D``.
        depth: number of transformer blocks.
        num_heads: attention heads; must divide ``embed_dim``.
        mlp_ratio: hidden width of each MLP relative to ``D``.
        qkv_bias: bias on the qkv projection (VideoMAE has q and v biases; a k bias cannot change
            attention, so a zero k bias reproduces it exactly).
        drop_path_rate: stochastic depth at the last block.
        pos_embed: ``"sincos"`` (VideoMAE, fixed) or ``"separable"`` (MAE-ST, learnable).
        norm_eps: LayerNorm epsilon.
        final_norm: LayerNorm after the last block (VideoMAE pretraining encoders; ``transformers``
            ``use_mean_pooling=False``). ``False`` returns the last block's tokens unnormalised, as
            ``transformers``' ``VideoMAEModel`` does with ``use_mean_pooling=True`` (fine-tuned
            checkpoints, whose ``fc_norm`` after pooling belongs to the classification head).
        attention_pattern: a sparse pattern (``vtrep.attention``; time in frames' token slices, i.e.
            tubelets), or ``None`` for full attention. Long clips: e.g. ``LocalWindow(window=2)``.
        attention_backend: ``dense`` (reference), ``blocked`` (training on any device) or ``flex`` (GPU).
        attention_block_size: tokens per block of the blocked / flex kernels (default 64 / 128).

    A sparse backbone has the same parameters as the dense one: weights load across both.
    ``config`` records these arguments (:mod:`vtrep.io.init_args`; the pattern as its own record) and
    follows :meth:`resize`.
    """

    def __init__(
        self,
        img_size: int = 224,
        num_frames: int = 16,
        patch_size: int = 16,
        tubelet_size: int = 2,
        in_chans: int = 3,
        embed_dim: int = 384,
        depth: int = 12,
        num_heads: int = 6,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.0,
        pos_embed: PosEmbedKind = "sincos",
        norm_eps: float = 1e-6,
        final_norm: bool = True,
        attention_pattern: Pattern | None = None,
        attention_backend: Backend = "dense",
        attention_block_size: int | None = None,
    ) -> None:
        super().__init__()
        if depth < 0:
            raise ValueError(f"depth must be >= 0, got {depth}")
        if not 0.0 <= drop_path_rate < 1.0:
            raise ValueError(f"drop_path_rate must be in [0, 1), got {drop_path_rate}")
        positive_int("num_heads", num_heads)
        positive("mlp_ratio", mlp_ratio)
        positive("norm_eps", norm_eps)
        self.patch_embed = TubeletEmbed(img_size, num_frames, patch_size, tubelet_size, in_chans, embed_dim)
        self.embed_dim = embed_dim
        self.pos_embed = build_pos_embed(pos_embed, embed_dim, self.grid)
        attend = grid_attention(attention_pattern, attention_backend, attention_block_size, self.grid)
        self.blocks = transformer_blocks(embed_dim, depth, num_heads, mlp_ratio, qkv_bias, drop_path_rate, norm_eps,
                                         attend)
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps) if final_norm else nn.Identity()
        self.apply(init_vit_weights)
        nn.init.xavier_uniform_(self.patch_embed.proj.weight.view(embed_dim, -1))

    @property
    def grid(self) -> tuple[int, int, int]:
        """Token grid ``(t, h, w)``."""
        return self.patch_embed.grid

    @property
    def num_tokens(self) -> int:
        return self.patch_embed.num_tokens

    @property
    def patch_dim(self) -> int:
        """Pixels per token times channels, ``P``."""
        return self.patch_embed.patch_dim

    def forward_features(self, video: torch.Tensor, ids_keep: torch.Tensor | None = None) -> torch.Tensor:
        """Encode ``video (B, C, T, H, W)`` into normalised tokens ``(B, N, D)``.

        With ``ids_keep (B, Nv)`` only those tokens are embedded and encoded, giving ``(B, Nv, D)``
        in the order of ``ids_keep``.
        """
        return self.forward_patches(self.patch_embed.patchify(video), ids_keep)

    def forward_patches(self, patches: torch.Tensor, ids_keep: torch.Tensor | None = None) -> torch.Tensor:
        """As :meth:`forward_features`, from the patchified clip ``(B, N, P)`` (see ``TubeletEmbed.patchify``)."""
        if ids_keep is not None:
            patches = gather_tokens(patches, ids_keep)
        x = self.patch_embed.embed_patches(patches)
        pos = self.pos_embed().to(x.dtype).expand(x.shape[0], -1, -1)
        x = x + (pos if ids_keep is None else gather_tokens(pos, ids_keep))
        return self.norm(run_blocks(self.blocks, x, ids_keep))

    def forward_layers(self, video: torch.Tensor) -> list[torch.Tensor]:
        """Every token of ``video (B, C, T, H, W)`` after the embedding and after each block: ``depth + 1``
        tensors ``(B, N, D)``. The last is :meth:`forward_features`'s output (after the final norm, when the
        encoder has one); the others are the residual stream, unnormalised."""
        x = self.patch_embed.embed_patches(self.patch_embed.patchify(video))
        layers = [x + self.pos_embed().to(x.dtype)]
        for index in range(len(self.blocks)):
            layers.append(run_blocks(self.blocks[index:index + 1], layers[-1]))
        layers[-1] = self.norm(layers[-1])
        return layers

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """Mean over tokens: ``(B, N, D) -> (B, D)``."""
        return tokens.mean(dim=1)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """Pooled clip feature ``(B, D)``."""
        return self.pool(self.forward_features(video))

    def resize(self, img_size: int | None = None, num_frames: int | None = None) -> None:
        """Change the input size in place; learnable position tables are interpolated."""
        cfg = dict(self.config, img_size=img_size or self.config["img_size"],
                   num_frames=num_frames or self.config["num_frames"])
        old_pos = self.pos_embed.state_dict()
        weight = self.patch_embed.proj
        self.patch_embed = TubeletEmbed(cfg["img_size"], cfg["num_frames"], cfg["patch_size"],
                                        cfg["tubelet_size"], cfg["in_chans"], cfg["embed_dim"])
        self.patch_embed.proj = weight
        self.pos_embed = build_pos_embed(cfg["pos_embed"], cfg["embed_dim"], self.grid).to(weight.weight.device)
        self.pos_embed.load_state_dict(old_pos)
        self.config = cfg
        attend = grid_attention(cfg["attention_pattern"], cfg["attention_backend"], cfg["attention_block_size"],
                                self.grid)
        for block in self.blocks:
            if isinstance(block, PatternBlock):  # time steps now hold another h·w, and N changed
                block.attn.attend = attend
