"""PatchTST-style masked pretraining task."""

import pytest
import torch

from vtrep.backbones import PatchTSTEncoder
from vtrep.masking import SeriesPatchMasking
from vtrep.tasks import SeriesMAETask


def tiny_task(**kwargs) -> SeriesMAETask:
    encoder = PatchTSTEncoder(context_length=64, patch_length=8, stride=8, d_model=16, depth=2, num_heads=2,
                              norm=kwargs.pop("norm", "batch"))
    return SeriesMAETask(encoder, SeriesPatchMasking(0.4), **kwargs)


@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_shapes_and_masked_loss(norm):
    task = tiny_task(norm=norm)
    x = torch.randn(3, 2, 64)
    pred, target, masked = task(x)
    assert pred.shape == target.shape == (3, 2, 8, 8) and masked.shape == (3, 2, 8)
    assert (masked.sum(-1) == 8 - int(8 * 0.6)).all()
    loss = task.objective(pred, target, masked)
    loss.backward()
    assert torch.isfinite(loss) and task.encoder.patch_embed.weight.grad is not None


def test_revin_makes_the_task_scale_free():
    task = tiny_task().eval()
    x = torch.randn(2, 1, 64)
    torch.manual_seed(0)
    a = task(x)[0]
    torch.manual_seed(0)
    b = task(100 * x + 7)[0]
    torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3)


def test_bad_inputs_are_named():
    task = tiny_task()
    with pytest.raises(ValueError, match=r"expected series \(B, C, 64\)"):
        task(torch.randn(2, 1, 50))
    x = torch.randn(2, 1, 64)
    x[0, 0, -3:] = float("nan")
    with pytest.raises(ValueError, match="nan_to_zero"):
        task(x)
    with pytest.raises(ValueError, match="norm must be"):
        PatchTSTEncoder(norm="group")
