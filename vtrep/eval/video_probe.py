"""Video probing: frozen features of a datamodule's clips, then one protocol on its split or by k-fold.

Features are extracted once per clip with the eval pipeline (centre clip, no augmentation): pooled
``(n, D)`` for ``linear`` / ``svm`` / ``logistic`` / ``knn``, tokens ``(n, N, D)`` for ``attentive``.
With ``folds`` the train and val clips are pooled and split into ``folds`` stratified folds (each
class dealt round-robin after a seeded shuffle); every fold is the test set once and the result is
the mean ± std of the fold accuracies — for small labelled folders, where one split is a noisy number.
"""

from __future__ import annotations

import statistics

import numpy as np
import torch

from vtrep.eval.pooled_protocols import classify_pooled
from vtrep.eval.token_probe import clip_tokens, fit_tokens


def clip_features(encoder, data, protocol: str) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
    """``((train_x, train_y), (val_x, val_y))``: tokens for ``attentive``, else pooled features."""
    from vtrep.probes.linear_probe import extract_features

    extract = clip_tokens if protocol == "attentive" else extract_features
    return extract(encoder, data.feature_dataloader("train")), extract(encoder, data.feature_dataloader("val"))


def fit_and_score(protocol: str, train: tuple, test: tuple, num_classes: int, seed: int, options: dict) -> dict:
    if protocol == "attentive":
        return fit_tokens(*train, *test, num_classes, seed, **options)
    result = classify_pooled(*train, *test, protocol, num_classes, seed, **options)
    return {**result, "num_train": len(train[0]), "num_test": len(test[0])}


def stratified_folds(labels: torch.Tensor, folds: int, seed: int) -> np.ndarray:
    """The fold ``0..folds-1`` of each item: every class is spread over the folds as evenly as it can be."""
    labels = labels.numpy()
    assignment = np.empty(len(labels), dtype=np.int64)
    for label in np.unique(labels):
        positions = np.flatnonzero(labels == label)
        order = np.random.default_rng([seed, int(label)]).permutation(len(positions))
        assignment[positions[order]] = np.arange(len(positions)) % folds
    return assignment


def cross_validate(protocol: str, x: torch.Tensor, y: torch.Tensor, folds: int, num_classes: int, seed: int,
                   options: dict) -> dict:
    """Mean ± std accuracy over ``folds`` stratified folds of ``(x, y)``, with each fold's result."""
    if folds < 2:
        raise ValueError(f"folds must be at least 2, got {folds}")
    smallest = int(torch.bincount(y).min()) if len(y) else 0
    if smallest < folds:
        raise ValueError(f"folds={folds} needs at least {folds} clips of every class; the smallest class has "
                         f"{smallest}")
    assignment = torch.from_numpy(stratified_folds(y, folds, seed))
    runs = []
    for fold in range(folds):
        test, train = assignment == fold, assignment != fold
        runs.append(fit_and_score(protocol, (x[train], y[train]), (x[test], y[test]), num_classes, seed, options))
    accuracies = [r["accuracy"] for r in runs]
    return {"protocol": protocol, "accuracy": statistics.fmean(accuracies), "accuracy_std": statistics.stdev(accuracies),
            "folds": folds, "fold_accuracies": accuracies, "num_train": len(y), "num_test": len(y)}


def probe_video(encoder, data, protocol: str, seed: int, folds: int | None = None, **options) -> dict:
    """Accuracy of ``protocol`` on ``data``'s val clips, or its k-fold mean over all clips with ``folds``."""
    if not hasattr(data, "feature_dataloader"):
        raise ValueError(f"{type(data).__name__} has no feature_dataloader: a video probe needs a video datamodule")
    data.prepare_data()
    data.setup("fit")
    train, val = clip_features(encoder, data, protocol)
    if folds is None:
        return fit_and_score(protocol, train, val, int(data.num_classes), seed, options)
    x, y = torch.cat([train[0], val[0]]), torch.cat([train[1], val[1]])
    return cross_validate(protocol, x, y, folds, int(data.num_classes), seed, options)
