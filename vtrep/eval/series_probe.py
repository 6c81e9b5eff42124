"""Series classification from a frozen encoder: representations of both splits, then a protocol.

TS2Vec's protocol by default: each series is encoded whole and max-pooled into one vector
(:func:`~vtrep.eval.series_features.series_representations`), the classifier is fitted on the
training split and scored on the test split (the archive's own split; the encoder never saw the
test labels, nor — in ``vtrep fit`` of a UCR set — the test series, which only serve as validation).
"""

from __future__ import annotations

import time

import torch
from torch import nn

from vtrep.eval.pooled_protocols import PooledProtocol, classify_pooled
from vtrep.eval.series_features import LayerChoice, series_representations


def split_tensors(data, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x (n, C, T), y (n,))`` of a series classification datamodule's ``train`` or ``test`` split."""
    data.prepare_data()
    data.setup("fit")
    dataset = getattr(data, f"{split}_set", None)
    tensors = getattr(dataset, "tensors", None)
    if tensors is None or len(tensors) < 2:
        raise ValueError(f"{type(data).__name__} has no labelled `{split}_set` of (series, label) tensors; "
                         "a series probe needs a classification datamodule such as SeriesClassificationDataModule")
    return tensors[0].float(), tensors[1].long()


def probe_series(encoder: nn.Module, data, protocol: PooledProtocol = "svm", revin: bool = True,
                 layers: LayerChoice = "last", seed: int = 0, **options) -> dict:
    """Accuracy of ``protocol`` on the frozen ``encoder``'s representations of ``data``'s splits.

    Patch encoders take no NaN (end padding of variable-length sets): it is set to 0 for them, as
    the patch MAE saw it in pretraining; TS2Vec's encoder masks NaN steps itself.
    """
    start = time.perf_counter()
    (train_x, train_y), (test_x, test_y) = split_tensors(data, "train"), split_tensors(data, "test")
    if getattr(encoder, "patch_length", None) is not None:
        train_x, test_x = torch.nan_to_num(train_x), torch.nan_to_num(test_x)
    features = [series_representations(encoder, x, revin=revin, layers=layers) for x in (train_x, test_x)]
    if not all(torch.isfinite(f).all() for f in features):
        raise ValueError("the encoder produced NaN or inf representations; is the series all NaN or the encoder "
                         "diverged?")
    result = classify_pooled(features[0], train_y, features[1], test_y, protocol, int(data.num_classes), seed,
                             **options)
    return {**result, "num_train": len(train_x), "num_test": len(test_x),
            "seconds": round(time.perf_counter() - start, 3)}
