"""AdaMAE: a learned token sampler that chooses the visible tokens (Bandara et al., CVPR 2023)."""

from __future__ import annotations

from functools import partial

import torch
from timm.models.vision_transformer import Block
from torch import nn
from torch.utils.checkpoint import checkpoint

from vtrep.layers.init import init_vit_weights
from vtrep.masking.base import Grid, MaskingStrategy, MaskOutput


def complement_ids(ids_keep: torch.Tensor, num_tokens: int) -> torch.Tensor:
    """Token ids ``(B, N − Nv)`` not in ``ids_keep (B, Nv)``, in ascending (grid) order."""
    dropped = torch.ones(ids_keep.shape[0], num_tokens, dtype=torch.int8, device=ids_keep.device)
    dropped.scatter_(1, ids_keep, 0)
    # A stable descending sort lists the dropped tokens first, each group in grid order.
    order = torch.sort(dropped, dim=1, descending=True, stable=True).indices
    return order[:, : num_tokens - ids_keep.shape[1]]


def sampling_loss(log_probs: torch.Tensor, ids_mask: torch.Tensor, error: torch.Tensor,
                  valid: torch.Tensor | None) -> torch.Tensor:
    """AdaMAE's sampling loss: batch mean of ``−mean_{i masked}(log p_i · stopgrad(error_i))``.

    Args:
        log_probs: ``(B, N)`` log sampling probabilities.
        ids_mask: ``(B, Nm)`` tokens whose reconstruction ``error (B, Nm)`` is known.
        valid: ``(B, Nm)`` bool, ``False`` on padding slots; ``None`` when all are real.
    """
    picked = torch.gather(log_probs, 1, ids_mask) * error.detach().to(log_probs.dtype)
    if valid is None:
        return -picked.mean(dim=1).mean()
    weight = valid.to(picked.dtype)
    return -((picked * weight).sum(dim=1) / weight.sum(dim=1).clamp_min(1.0)).mean()


class AdaMAESampler(MaskingStrategy):
    """Visible tokens drawn from a learned categorical distribution over the ``N`` tokens.

    As in AdaMAE's reference code (``get_mask`` in ``models/pretrain/vit.py``): a learnable
    positional embedding (zero-initialised) is added to the patch tokens, one pre-norm transformer
    block (no qkv bias, dropout 0.1 on projections), ``Linear(D, 1)`` gives a logit per token, a
    softmax over all ``N`` tokens gives ``p``, and ``int(N · (1 − ρ))`` visible tokens per sample are
    drawn by multinomial sampling without replacement (vectorised over the batch). Visible and
    masked ids are returned in grid order, as the reference's boolean selection ``x[~mask]`` gives.

    The sampler cannot learn from the reconstruction loss (sampling is not differentiable); it
    learns only from the sampling loss ``λ · −mean_masked(log p_i · stopgrad(error_i))``, which
    raises the probability of tokens that are hard to reconstruct. As in the reference, the sampler
    reads the patch embeddings without detaching them, so that term also reaches the patch embedding.
    With ``sampling_weight = 0`` no sampling loss is built and the sampler gets no gradient.

    Args:
        mask_ratio: ``ρ``, fraction of tokens hidden from the encoder (AdaMAE: 0.95).
        sampling_weight: ``λ`` on the sampling loss (AdaMAE: 1e-4).
        num_heads: heads of the sampler block (AdaMAE: 8); must divide the sampler width.
        mlp_ratio: MLP width of the sampler block relative to the backbone width.
        dropout: dropout on the block's projections (AdaMAE: 0.1).
        sampler_dim: width of the sampler block. ``None`` (default) is the reference: the backbone
            width. A smaller width adds ``Linear(D, sampler_dim)`` before the block — our deviation,
            which makes the sampler cheap enough that masking 95% saves compute overall (at full
            width one extra block over all ``N`` tokens costs more than the encoder saves).
        checkpoint_sampler: recompute the sampler block in the backward pass instead of keeping its
            activations (``torch.utils.checkpoint``): same results, less memory, one more block forward.
        embed_dim: backbone width; normally filled in by the task through :meth:`bind`.
        grid: token grid ``(t, h, w)``; normally filled in by the task through :meth:`bind`.
    """

    needs_tokens = True

    def __init__(self, mask_ratio: float = 0.95, sampling_weight: float = 1e-4, num_heads: int = 8,
                 mlp_ratio: float = 4.0, dropout: float = 0.1, sampler_dim: int | None = None,
                 checkpoint_sampler: bool = False, embed_dim: int | None = None,
                 grid: tuple[int, int, int] | None = None) -> None:
        super().__init__(mask_ratio)
        if sampling_weight < 0:
            raise ValueError(f"sampling_weight must be >= 0, got {sampling_weight}")
        if num_heads < 1:
            raise ValueError(f"num_heads must be >= 1, got {num_heads}")
        self.sampling_weight = sampling_weight
        if sampler_dim is not None and sampler_dim < 1:
            raise ValueError(f"sampler_dim must be a positive integer or None, got {sampler_dim}")
        self.num_heads, self.mlp_ratio, self.dropout = num_heads, mlp_ratio, dropout
        self.sampler_dim, self.checkpoint_sampler = sampler_dim, checkpoint_sampler
        self.grid: Grid | None = None
        if (embed_dim is None) != (grid is None):
            raise ValueError("give both embed_dim and grid, or neither (the task binds them)")
        if embed_dim is not None:
            self.bind(embed_dim, tuple(grid))

    def bind(self, embed_dim: int, grid: Grid) -> None:
        grid = tuple(int(g) for g in grid)
        if self.grid is not None:
            if (self.embed_dim, self.grid) != (embed_dim, grid):
                raise ValueError(f"sampler was built for width {self.embed_dim} and grid {self.grid}, "
                                 f"backbone has width {embed_dim} and grid {grid}")
            return
        width = self.sampler_dim or embed_dim
        if width % self.num_heads != 0:
            raise ValueError(f"AdaMAE sampler: width {width} is not divisible by num_heads={self.num_heads}")
        num_tokens = grid[0] * grid[1] * grid[2]
        self.num_visible = int(num_tokens * (1 - self.mask_ratio))
        if not 0 < self.num_visible < num_tokens:
            raise ValueError(f"mask_ratio={self.mask_ratio} keeps {self.num_visible} of {num_tokens} tokens; "
                             "AdaMAE needs at least one visible and one masked token")
        self.grid, self.embed_dim = grid, embed_dim
        self.project = nn.Identity() if width == embed_dim else nn.Linear(embed_dim, width)
        self.pos_embed = nn.Parameter(torch.zeros(1, num_tokens, width))
        self.block = Block(width, self.num_heads, mlp_ratio=self.mlp_ratio, qkv_bias=False,
                           proj_drop=self.dropout, norm_layer=partial(nn.LayerNorm, eps=1e-5))
        self.score = nn.Linear(width, 1)
        for module in (self.project, self.block, self.score):
            module.apply(init_vit_weights)  # AdaMAE uses the same _init_weights
        if self.sampling_weight == 0:
            # Nothing trains the sampler: freeze it so optimisers skip it and DDP sees no unused parameters.
            self.requires_grad_(False)

    def token_probs(self, tokens: torch.Tensor) -> torch.Tensor:
        """Sampling distribution ``(B, N)`` (float32) for patch tokens ``(B, N, D)``."""
        if self.grid is None:
            raise RuntimeError("AdaMAESampler is not bound to a backbone: pass it to a task or call bind()")
        x = self.project(tokens)
        x = x + self.pos_embed.to(x.dtype)
        if self.checkpoint_sampler and torch.is_grad_enabled():
            x = checkpoint(self.block, x, use_reentrant=False)
        else:
            x = self.block(x)
        logits = self.score(x).squeeze(-1)
        return torch.nan_to_num(logits.float()).softmax(dim=-1)

    def forward(self, batch_size: int, grid: Grid, device: torch.device | str = "cpu",
                tokens: torch.Tensor | None = None) -> MaskOutput:
        if tokens is None:
            raise ValueError("AdaMAESampler needs the patch tokens (B, N, D); it looks at the content")
        if tuple(grid) != self.grid:
            raise ValueError(f"sampler was built for grid {self.grid}, got {tuple(grid)}")
        if self.sampling_weight > 0:
            probs = self.token_probs(tokens)
        else:  # nothing will train the sampler: keep no graph for it
            with torch.no_grad():
                probs = self.token_probs(tokens)
        ids_keep = torch.multinomial(probs.detach(), self.num_visible, replacement=False).sort(dim=1).values
        ids_mask = complement_ids(ids_keep, probs.shape[1])
        error_loss = None
        if self.sampling_weight > 0:
            log_probs = torch.log(probs.clamp_min(torch.finfo(probs.dtype).tiny))
            weight = self.sampling_weight

            def error_loss(ids: torch.Tensor, error: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
                return weight * sampling_loss(log_probs, ids, error, valid)

        return MaskOutput.from_split(ids_keep, ids_mask, probs=probs.detach(), error_loss=error_loss)

