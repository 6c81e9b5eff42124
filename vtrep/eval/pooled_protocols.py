"""Classifiers on pooled frozen features ``(n, F)``, one name each, one result shape.

* ``linear`` — MAE's probe (BatchNorm without affine + Linear, SGD; :mod:`vtrep.probes.linear_probe`);
* ``svm`` — TS2Vec's RBF-SVM with its C search and small-set rules (:mod:`vtrep.eval.series_classification`);
* ``logistic`` — standardised L2 logistic regression, C by cross-validation;
* ``knn`` — weighted k-NN on cosine similarity (:mod:`vtrep.probes.knn`).
"""

from __future__ import annotations

from typing import Literal

import torch

from vtrep.errors import UsageError
from vtrep.eval.series_classification import evaluate_representations

PooledProtocol = Literal["linear", "svm", "logistic", "knn"]
POOLED_PROTOCOLS = ("linear", "svm", "logistic", "knn")


def classify_pooled(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                    protocol: str, num_classes: int, seed: int = 0, **options) -> dict:
    """``{"protocol", "accuracy", ...}``: fit ``protocol`` on the training features, score the test ones.

    ``options`` go to the protocol (``linear``: epochs, batch_size, base_lr; ``knn``: k, temperature).
    """
    if protocol not in POOLED_PROTOCOLS:
        raise UsageError(f"protocol must be one of {POOLED_PROTOCOLS}, got {protocol!r}")
    if protocol in ("svm", "logistic"):
        unknown = sorted(options)
        if unknown:
            raise UsageError(f"protocol {protocol!r} takes no options, got {unknown}")
        res = evaluate_representations(train_x.numpy(), train_y.numpy(), test_x.numpy(), test_y.numpy(), protocol,
                                       seed)
        return {"protocol": protocol, "accuracy": res.accuracy, "best_c": res.best_c}
    if protocol == "linear":
        from vtrep.probes.linear_probe import fit_linear_probe

        res = fit_linear_probe(train_x, train_y, test_x, test_y, num_classes, seed=seed, **options)
        return {"protocol": protocol, "accuracy": res.top1, "train_accuracy": res.train_top1}
    from vtrep.probes.knn import knn_accuracy

    return {"protocol": protocol, "accuracy": float(knn_accuracy(train_x, train_y, test_x, test_y, **options))}
