"""Classification on frozen series representations with TS2Vec's protocol (``tasks/_eval_protocols.py``).

* ``svm`` (TS2Vec): RBF ``SVC(gamma="scale")``; C chosen from {1e-4, …, 1e4, ∞} by 5-fold grid
  search; when the training set is small (fewer than 50 series, or fewer than 5 per class on
  average) no search is run and C = ∞; above 10 000 series a stratified 10 000 (``random_state=0``
  whatever the run's seed, as TS2Vec) are used for the search and the final fit.
  Deviation: above ``HARD_MARGIN_MAX_SAMPLES`` (5 000) training series, C = ∞ is left out of the
  grid. A hard-margin RBF SVM on thousands of non-separable series runs the solver to its 10⁷
  iteration bound: on ElectricDevices (8 926 series) one such fit of the search took over 11 minutes
  here, while the other nine values of C together took 3. Whether C = ∞ would have won such a
  search is not measured; on thousands of noisy series a soft margin is the expected choice.
* ``logistic``: standardised features and L2 logistic regression, C from the same kind of grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from vtrep.errors import UsageError

SVM_C_GRID = [1e-4, 1e-3, 1e-2, 1e-1, 1, 10, 100, 1000, 10000, np.inf]
MAX_SEARCH_SAMPLES = 10000
HARD_MARGIN_MAX_SAMPLES = 5000


@dataclass
class ClassificationResult:
    accuracy: float
    protocol: str
    best_c: float


def fit_svm(features: np.ndarray, labels: np.ndarray):
    """TS2Vec's ``fit_svm``: grid-searched RBF SVC, or C = ∞ when classes are tiny (module docstring)."""
    from sklearn.model_selection import GridSearchCV, train_test_split
    from sklearn.svm import SVC

    num_classes = np.unique(labels).shape[0]
    svm = SVC(C=np.inf, gamma="scale", max_iter=10_000_000)  # TS2Vec's grid bound; its C = ∞ fallback has none
    if len(features) // num_classes < 5 or len(features) < 50:
        return svm.fit(features, labels)
    if len(features) > MAX_SEARCH_SAMPLES:
        features, _, labels, _ = train_test_split(features, labels, train_size=MAX_SEARCH_SAMPLES, random_state=0,
                                                  stratify=labels)
    grid = SVM_C_GRID if len(features) <= HARD_MARGIN_MAX_SAMPLES else [c for c in SVM_C_GRID if np.isfinite(c)]
    search = GridSearchCV(svm, {"C": grid}, cv=5, n_jobs=1)
    return search.fit(features, labels).best_estimator_


def fit_logistic(features: np.ndarray, labels: np.ndarray, seed: int = 0):
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    folds = max(2, min(5, int(np.bincount(labels).min())))
    model = LogisticRegressionCV(Cs=[1e-3, 1e-2, 1e-1, 1, 10, 100], cv=folds, max_iter=5000, random_state=seed)
    return make_pipeline(StandardScaler(), model).fit(features, labels)


def fit_classifier(train_x: np.ndarray, train_y: np.ndarray, protocol: Literal["svm", "logistic"] = "svm",
                   seed: int = 0) -> tuple[object, float]:
    """The fitted ``svm`` or ``logistic`` model on ``train_x (n, F)`` and its chosen C."""
    if train_x.ndim != 2:
        raise ValueError(f"features must be (n, F), got {train_x.shape}")
    if not np.isfinite(train_x).all():
        raise ValueError("features contain NaN or inf")
    if protocol == "svm":
        model = fit_svm(train_x, train_y)
        return model, float(model.C)
    if protocol == "logistic":
        model = fit_logistic(train_x, train_y, seed)
        return model, float(model[-1].C_[0])
    raise UsageError(f"protocol must be 'svm' or 'logistic', got {protocol!r}")


def evaluate_representations(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                             protocol: Literal["svm", "logistic"] = "svm", seed: int = 0) -> ClassificationResult:
    """Fit on ``train_x (n, F)`` and report test accuracy."""
    if train_x.ndim != 2 or test_x.ndim != 2 or train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"features must be (n, F) with equal F, got {train_x.shape} and {test_x.shape}")
    if not (np.isfinite(train_x).all() and np.isfinite(test_x).all()):
        raise ValueError("features contain NaN or inf")
    if protocol not in ("svm", "logistic"):
        raise UsageError(f"protocol must be 'svm' or 'logistic', got {protocol!r}")
    model, best_c = fit_classifier(train_x, train_y, protocol, seed)
    return ClassificationResult(float((model.predict(test_x) == test_y).mean()), protocol, best_c)
