"""Instance representations of series from a frozen encoder."""

import pytest
import torch

from vtrep.backbones import PatchMLPEncoder
from vtrep.eval.series_features import series_representations


def test_representation_shape_and_max_pooling():
    encoder = PatchMLPEncoder(context_length=32, patch_length=8, stride=8, d_model=6, dropout=0.0)
    x = torch.randn(5, 2, 32)
    features = series_representations(encoder, x, batch_size=2, revin=False)
    assert features.shape == (5, 12)
    tokens = encoder(x.unfold(-1, 8, 8))
    torch.testing.assert_close(features[:, :6], tokens[:, 0].amax(dim=1))


def test_nan_series_are_rejected():
    encoder = PatchMLPEncoder(context_length=16, patch_length=8, stride=8, d_model=4)
    x = torch.zeros(1, 1, 16)
    x[0, 0, 3] = float("nan")
    with pytest.raises(ValueError, match="nan_to_zero"):
        series_representations(encoder, x)
