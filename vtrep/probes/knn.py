"""Weighted k-NN classification of pooled frozen features, as in DINO's k-NN evaluation.

Features ``(n, D)`` are L2-normalised; each eval clip takes its ``k`` (default 20) most cosine-similar
training clips, each voting for its label with weight ``exp(similarity / temperature)`` (default
0.07); the class with the largest summed vote wins (ties: the lowest class index). DINO's
``knn_classifier`` does the same, on features of an unaugmented pass, with ``k=20, T=0.07``.

Deviation: none in the rule; eval clips are scored in chunks so the similarity matrix stays small.
When ``k`` exceeds the number of training clips, every training clip votes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vtrep.checks import positive, positive_int


def _check(train_x: torch.Tensor, train_y: torch.Tensor, eval_x: torch.Tensor, eval_y: torch.Tensor) -> None:
    for name, x, y in (("train", train_x, train_y), ("eval", eval_x, eval_y)):
        if x.ndim != 2:
            raise ValueError(f"{name}_x must be (n, D) pooled features, got shape {tuple(x.shape)}")
        if y.ndim != 1 or y.shape[0] != x.shape[0]:
            raise ValueError(f"{name}_y must be ({x.shape[0]},) to match {name}_x, got {tuple(y.shape)}")
        if y.dtype.is_floating_point or y.dtype == torch.bool:
            raise ValueError(f"{name}_y must be integer class indices, got {y.dtype}")
    if train_x.shape[1] != eval_x.shape[1]:
        raise ValueError(f"train and eval features must have the same width, got {train_x.shape[1]} "
                         f"and {eval_x.shape[1]}")
    if train_x.shape[0] == 0:
        raise ValueError("k-NN needs at least one training clip")
    if train_y.numel() and train_y.min() < 0:
        raise ValueError(f"train_y must be >= 0 class indices, got {train_y.min().item()}")


@torch.no_grad()
def knn_votes(train_x: torch.Tensor, train_y: torch.Tensor, eval_x: torch.Tensor, k: int = 20,
              temperature: float = 0.07, num_classes: int | None = None, chunk: int = 1024) -> torch.Tensor:
    """Each class's share ``(m, classes)`` of the ``exp(similarity / temperature)`` votes of each eval clip's ``k`` neighbours.

    Rows sum to 1. The weights are taken relative to the clip's nearest neighbour, ``exp((s - s_max) / T)``,
    which gives the same shares without overflow: ``exp(1 / 0.001)`` is inf in float32 and made a small
    temperature return NaN votes.
    """
    positive_int("k", k)
    positive("temperature", temperature)
    positive_int("chunk", chunk)
    classes = int(train_y.max().item()) + 1 if num_classes is None else num_classes
    train = F.normalize(train_x.float(), dim=1)
    k = min(k, train.shape[0])
    votes = []
    for start in range(0, eval_x.shape[0], chunk):
        sims = F.normalize(eval_x[start:start + chunk].float(), dim=1) @ train.T
        top_sims, top_idx = sims.topk(k, dim=1)
        chunk_votes = torch.zeros(sims.shape[0], classes, device=sims.device)
        weights = ((top_sims - top_sims[:, :1]) / temperature).exp()  # topk is sorted: column 0 is the largest
        chunk_votes.scatter_add_(1, train_y[top_idx].long(), weights)
        votes.append(chunk_votes / chunk_votes.sum(dim=1, keepdim=True))
    return torch.cat(votes) if votes else torch.zeros(0, classes)


def knn_predict(train_x: torch.Tensor, train_y: torch.Tensor, eval_x: torch.Tensor, k: int = 20,
                temperature: float = 0.07, num_classes: int | None = None, chunk: int = 1024) -> torch.Tensor:
    """Predicted class ``(m,)`` of each eval clip ``eval_x (m, D)`` by weighted vote of its ``k`` neighbours."""
    votes = knn_votes(train_x, train_y, eval_x, k, temperature, num_classes, chunk)
    return votes.argmax(dim=1) if len(votes) else torch.zeros(0, dtype=torch.long)


def knn_accuracy(train_x: torch.Tensor, train_y: torch.Tensor, eval_x: torch.Tensor, eval_y: torch.Tensor,
                 k: int = 20, temperature: float = 0.07) -> float:
    """Top-1 of DINO's weighted k-NN (cosine similarity, ``exp(sim / temperature)`` votes) on ``eval_x (m, D)``."""
    _check(train_x, train_y, eval_x, eval_y)
    if eval_x.shape[0] == 0:
        raise ValueError("k-NN accuracy needs at least one eval clip")
    classes = int(max(train_y.max().item(), eval_y.max().item())) + 1
    predictions = knn_predict(train_x, train_y, eval_x, k, temperature, classes)
    return (predictions.cpu() == eval_y.cpu()).float().mean().item()
