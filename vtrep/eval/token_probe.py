"""The attentive probe of ``vtrep probe``: V-JEPA's frozen-token classifier on a video encoder's clip tokens.

Tokens ``(B, N, D)`` of both splits are extracted once (deterministic clips, no augmentation — a stated
deviation, see :mod:`vtrep.probes.attentive_probe`), then the probe grid is trained on the train split,
its (lr, weight decay) chosen on a held-out tenth of it, and the chosen probe scored on the val split.
"""

from __future__ import annotations

import torch
from torch import nn

from vtrep.io.batches import batch_input_and_label


@torch.no_grad()
def clip_tokens(encoder: nn.Module, loader) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised encoder tokens ``(n, N, D)`` and labels ``(n,)`` of every clip in ``loader``."""
    encoder = encoder.eval()
    tokens, labels = [], []
    for batch in loader:
        video, label = batch_input_and_label(batch, "video")
        if label is None:
            raise ValueError("the probe needs labelled clips: the feature loader gave batches without labels")
        tokens.append(encoder.forward_features(video).float().cpu())
        labels.append(label.long())
    if not tokens:
        raise ValueError("the feature loader yielded no clips")
    return torch.cat(tokens), torch.cat(labels)


def probe_heads(dim: int, preferred: int = 16) -> int:
    """V-JEPA 2's 16 heads where they divide the width, else the largest count below that does."""
    return next(h for h in range(min(preferred, dim), 0, -1) if dim % h == 0)


def fit_tokens(train_t: torch.Tensor, train_y: torch.Tensor, eval_t: torch.Tensor, eval_y: torch.Tensor,
               num_classes: int, seed: int = 0, **options) -> dict:
    """Attentive-probe accuracy on ``eval_t (n, N, D)``; ``options`` go to ``fit_attentive_probe``."""
    from vtrep.probes.attentive_probe import fit_attentive_probe

    options.setdefault("num_heads", probe_heads(train_t.shape[-1]))
    res = fit_attentive_probe(train_t, train_y, eval_t, eval_y, num_classes, seed=seed, **options)
    return {"protocol": "attentive", "accuracy": res.top1, "train_accuracy": res.train_top1, "lr": res.lr,
            "weight_decay": res.weight_decay, "num_train": len(train_t), "num_test": len(eval_t),
            "num_holdout": res.num_holdout}
