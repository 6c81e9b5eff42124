"""k-sparse probing (SAEBench's sparse-probing protocol, Karvonen et al. 2025): how much of a label a few
latents carry.

Axes: ``n`` tokens, ``K`` latents (or ``d`` raw feature dimensions), ``u`` items.

- Each item's vector is the mean of its tokens' codes (:class:`ItemMeans`; raw features alike).
- For each class ``c`` (one-vs-rest), on the training items only, the ``k`` features with the largest
  ``|mean(class c) − mean(rest)|`` are chosen (:func:`top_by_mean_difference`).
- A logistic regression (L2, ``C = 1``, scikit-learn's ``lbfgs``) is fitted on those ``k`` features of the
  training items, each standardised with the training mean and standard deviation, with balanced class
  weights, and scored on the held-out items by balanced accuracy (mean of the true-positive and
  true-negative rates: chance is 0.5 whatever the class sizes).
- The score for ``k`` is the mean over classes; :func:`sparse_probing` does it for every ``k`` in ``ks``
  (default 1, 2, 5) and, with ``dense=True``, once with all features (the reference a raw-feature probe sets).

Deviations from SAEBench: it balances its binary datasets by sampling and reports accuracy; here all items
are kept with balanced weights and balanced accuracy; features are standardised (SAE codes and raw features
have unrelated scales, and ``C = 1`` means something only at a fixed scale).
"""

from __future__ import annotations

import torch

KS = (1, 2, 5)


class ItemMeans:
    """Streaming per-item mean of token vectors ``(n, K)``; items are non-negative integers."""

    def __init__(self, width: int) -> None:
        self.sums = torch.zeros(0, width, dtype=torch.float64)
        self.counts = torch.zeros(0, dtype=torch.float64)
        self.labels = torch.zeros(0, dtype=torch.long)

    def update(self, values: torch.Tensor, item: torch.Tensor, label: torch.Tensor | None = None) -> None:
        item = item.long()
        size = int(item.max()) + 1 if len(item) else 0
        if size > len(self.counts):
            grow = size - len(self.counts)
            self.sums = torch.cat([self.sums, torch.zeros(grow, self.sums.shape[1], dtype=torch.float64)])
            self.counts = torch.cat([self.counts, torch.zeros(grow, dtype=torch.float64)])
            self.labels = torch.cat([self.labels, torch.full((grow,), -1, dtype=torch.long)])
        self.sums.index_add_(0, item, values.double())
        self.counts.index_add_(0, item, torch.ones(len(item), dtype=torch.float64))
        if label is not None:
            self.labels[item] = label.long()

    def result(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(items (u,), means (u, K) float32, labels (u,))`` of the items seen."""
        seen = (self.counts > 0).nonzero().flatten()
        return seen, (self.sums[seen] / self.counts[seen, None]).float(), self.labels[seen]


def top_by_mean_difference(x: torch.Tensor, positive: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` columns of ``x (u, K)`` with the largest ``|mean(positive) − mean(rest)|``."""
    difference = (x[positive].mean(0) - x[~positive].mean(0)).abs()
    return torch.topk(difference, min(k, x.shape[1])).indices


def _balanced_accuracy(train_x, train_y, test_x, test_y, C: float) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score

    mean, std = train_x.mean(0), train_x.std(0).clamp_min(1e-8)
    probe = LogisticRegression(C=C, class_weight="balanced", max_iter=1000)
    probe.fit(((train_x - mean) / std).numpy(), train_y.numpy())
    return float(balanced_accuracy_score(test_y.numpy(), probe.predict(((test_x - mean) / std).numpy())))


def sparse_probing(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                   ks: tuple[int, ...] = KS, dense: bool = False, C: float = 1.0) -> dict[str, float]:
    """Mean one-vs-rest balanced accuracy of k-sparse probes: ``{"k1": .., "k2": .., "k5": .., ["dense": ..]}``.

    ``train_x (u, K)`` / ``test_x`` are per-item pooled vectors, ``train_y`` / ``test_y`` integer labels;
    a class absent from either split is left out.
    """
    classes = [c for c in torch.unique(train_y).tolist() if (test_y == c).any() and (train_y != c).any()]
    if not classes:
        raise ValueError("k-sparse probing needs at least two classes present in both splits")
    scores: dict[str, list[float]] = {f"k{k}": [] for k in ks}
    if dense:
        scores["dense"] = []
    for c in classes:
        positive, test_positive = train_y == c, test_y == c
        for k in ks:
            chosen = top_by_mean_difference(train_x, positive, k)
            scores[f"k{k}"].append(_balanced_accuracy(train_x[:, chosen], positive, test_x[:, chosen], test_positive,
                                                      C))
        if dense:
            scores["dense"].append(_balanced_accuracy(train_x, positive, test_x, test_positive, C))
    return {name: sum(values) / len(values) for name, values in scores.items()}


def stratified_split(labels: torch.Tensor, test_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions ``(train, test)`` into ``labels (u,)``: per class a seeded ``test_fraction`` (at least one) held out."""
    generator = torch.Generator().manual_seed(seed)
    train, test = [], []
    for c in torch.unique(labels).tolist():
        members = (labels == c).nonzero().flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        held = max(1, round(test_fraction * len(members))) if len(members) > 1 else 0
        test.append(members[:held]), train.append(members[held:])
    return torch.cat(train).sort().values, torch.cat(test).sort().values
