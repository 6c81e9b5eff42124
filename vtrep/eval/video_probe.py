"""Video probing: frozen features of a datamodule's clips, then one protocol on its split or by k-fold.

Features are extracted once per clip with the eval pipeline (centre clip, no augmentation): pooled
``(n, D)`` for ``linear`` / ``svm`` / ``logistic`` / ``knn``, tokens ``(n, N, D)`` for ``attentive``.
With ``folds`` the train and val clips are pooled and split into ``folds`` stratified folds (each
class dealt round-robin after a seeded shuffle); every fold is the test set once and the result is
the mean ± std of the fold accuracies — for small labelled folders, where one split is a noisy number.

With ``test_views`` beyond 1 × 1 the probe still trains on one centre clip per training video, and each
test video is scored as the mean of its views' probabilities (VideoMAE's multi-view test,
:mod:`vtrep.eval.multiview`); with ``folds`` every video also has its views extracted, and only a held-out
fold's views are ever scored, never trained on. Every result records its ``test_views``.
"""

from __future__ import annotations

import statistics

import numpy as np
import torch

from vtrep.checks import int_at_least
from vtrep.errors import UsageError
from vtrep.eval.multiview import ViewCounts, check_view_protocol, score_views, view_features
from vtrep.eval.pooled_protocols import classify_pooled
from vtrep.eval.token_probe import clip_tokens, fit_tokens


def clip_features(encoder, data, protocol: str, splits: tuple[str, ...] = ("train", "val")
                  ) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
    """``(x, y)`` of each split's centre clips: tokens for ``attentive``, else pooled features."""
    from vtrep.probes.linear_probe import extract_features

    extract = clip_tokens if protocol == "attentive" else extract_features
    return tuple(extract(encoder, data.feature_dataloader(split)) for split in splits)


def fit_and_score(protocol: str, train: tuple, test: tuple, num_classes: int, seed: int, options: dict,
                  views: ViewCounts | None = None) -> dict:
    """Train on ``train = (x, y)``, score ``test``: one clip per video, or ``(n, views, ...)`` with ``views``."""
    if views is not None and views.count > 1:
        return score_views(protocol, train, test, num_classes, seed, options)
    if protocol == "attentive":
        return fit_tokens(*train, *test, num_classes, seed, **options)
    result = classify_pooled(*train, *test, protocol, num_classes, seed, **options)
    return {**result, "num_train": len(train[0]), "num_test": len(test[0])}


def check_folds(folds) -> None:
    """``folds`` is an integer >= 2: checked before any feature is extracted or encoder pretrained."""
    int_at_least("folds", folds, 2)


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
                   options: dict, test_x: torch.Tensor | None = None, views: ViewCounts | None = None) -> dict:
    """Mean ± std accuracy over ``folds`` stratified folds of ``(x, y)``, with each fold's result.

    Each fold trains on ``x`` of the other folds and tests on its own items of ``test_x`` (default ``x``;
    with ``views``, the items' test views ``(n, views, ...)``).
    """
    check_folds(folds)
    smallest = int(torch.bincount(y).min()) if len(y) else 0
    if smallest < folds:
        raise UsageError(f"folds={folds} needs at least {folds} clips of every class; the smallest class has "
                         f"{smallest}")
    test_x = x if test_x is None else test_x
    assignment = torch.from_numpy(stratified_folds(y, folds, seed))
    runs = []
    for fold in range(folds):
        test, train = assignment == fold, assignment != fold
        runs.append(fit_and_score(protocol, (x[train], y[train]), (test_x[test], y[test]), num_classes, seed,
                                  options, views))
    accuracies = [r["accuracy"] for r in runs]
    return {"protocol": protocol, "accuracy": statistics.fmean(accuracies), "accuracy_std": statistics.stdev(accuracies),
            "folds": folds, "fold_accuracies": accuracies, "num_train": len(y), "num_test": len(y)}


def extract_test_views(encoder, data, protocol: str, views: ViewCounts, splits: tuple[str, ...]
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)``: the ``(n, views, ...)`` features of ``splits``' videos, in their feature-loader order."""
    loaders = [data.feature_dataloader(split, clips=views.clips, crops=views.crops) for split in splits]
    parts = [view_features(encoder, loader, protocol == "attentive") for loader in loaders]
    return torch.cat([x for x, _ in parts]), torch.cat([y for _, y in parts])


def probe_video(encoder, data, protocol: str, seed: int, folds: int | None = None,
                test_views: ViewCounts | None = None, **options) -> dict:
    """Accuracy of ``protocol`` on ``data``'s val clips, or its k-fold mean over all clips with ``folds``.

    ``test_views`` (default 1 × 1, the centre clip) sets the views each test video is scored on.
    """
    views = test_views or ViewCounts()
    check_view_protocol(protocol, views)
    if not hasattr(data, "feature_dataloader"):
        raise UsageError(f"{type(data).__name__} has no feature_dataloader: a video probe needs a video datamodule")
    data.prepare_data()
    data.setup("fit")
    num_classes = int(data.num_classes)
    if folds is None:
        if views.count > 1:
            (train,) = clip_features(encoder, data, protocol, ("train",))
            test = extract_test_views(encoder, data, protocol, views, ("val",))
        else:
            train, test = clip_features(encoder, data, protocol)
        result = fit_and_score(protocol, train, test, num_classes, seed, options, views)
    else:
        train, val = clip_features(encoder, data, protocol)
        x, y = torch.cat([train[0], val[0]]), torch.cat([train[1], val[1]])
        test_x = extract_test_views(encoder, data, protocol, views, ("train", "val"))[0] if views.count > 1 else None
        result = cross_validate(protocol, x, y, folds, num_classes, seed, options, test_x, views)
    return {**result, "test_views": views.record()}
