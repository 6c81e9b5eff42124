"""Parameter groups with and without weight decay."""

from __future__ import annotations

from torch import nn

NO_DECAY_NAMES = ("pos_embed", "mask_token", "cls_token")


def weight_decay_groups(module: nn.Module, weight_decay: float) -> list[dict]:
    """Biases, norm weights (all 1-D parameters) and learned tokens/position tables get no decay (MAE, VideoMAE)."""
    decay, no_decay = [], []
    for name, param in module.named_parameters():
        if not param.requires_grad:
            continue
        if param.ndim <= 1 or any(key in name for key in NO_DECAY_NAMES):
            no_decay.append(param)
        else:
            decay.append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
