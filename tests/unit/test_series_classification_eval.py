"""TS2Vec's SVM protocol and the logistic-regression option."""

import numpy as np
import pytest

from vtrep.eval.series_classification import evaluate_representations, fit_svm


def blobs(n_per_class: int, seed: int):
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0], [4, 0], [0, 4]], dtype=float)
    x = np.concatenate([c + rng.normal(size=(n_per_class, 2)) for c in centres])
    return x, np.repeat(np.arange(3), n_per_class)


def test_tiny_training_sets_fall_back_to_c_infinity():
    x, y = blobs(4, 0)  # 12 series, 4 per class: TS2Vec skips the grid search
    assert np.isinf(fit_svm(x, y).C)


def test_larger_training_sets_are_grid_searched(monkeypatch):
    import sklearn.model_selection as selection

    calls = []
    original = selection.GridSearchCV.fit

    def spy(self, *args, **kwargs):
        calls.append(self.param_grid["C"])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(selection.GridSearchCV, "fit", spy)
    x, y = blobs(30, 0)
    fit_svm(x, y)
    assert len(calls) == 1 and calls[0][0] == 1e-4 and np.isinf(calls[0][-1])
    # above HARD_MARGIN_MAX_SAMPLES the never-ending hard-margin fit is left out of the grid
    monkeypatch.setattr("vtrep.eval.series_classification.HARD_MARGIN_MAX_SAMPLES", 60)
    fit_svm(x, y)
    assert calls[1] == [1e-4, 1e-3, 1e-2, 1e-1, 1, 10, 100, 1000, 10000]


@pytest.mark.parametrize("protocol", ["svm", "logistic"])
def test_separable_blobs_are_classified(protocol):
    train_x, train_y = blobs(30, 0)
    test_x, test_y = blobs(30, 1)
    result = evaluate_representations(train_x, train_y, test_x, test_y, protocol)
    assert result.accuracy > 0.9 and result.protocol == protocol


def test_bad_features_are_rejected():
    x, y = blobs(10, 0)
    with pytest.raises(ValueError, match="NaN"):
        evaluate_representations(np.full_like(x, np.nan), y, x, y)
    with pytest.raises(ValueError, match="protocol"):
        evaluate_representations(x, y, x, y, protocol="knn")
