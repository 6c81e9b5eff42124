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
    target, [(pred, masked, tokens)] = task(x)
    assert pred.shape == target.shape == (3, 2, 8, 8) and masked.shape == (3, 2, 8) and tokens.shape == (3, 2, 8, 16)
    assert (masked.sum(-1) == 8 - int(8 * 0.6)).all()
    loss = task.loss(target, [(pred, masked, tokens)])
    loss.backward()
    assert torch.isfinite(loss) and task.encoder.patch_embed.weight.grad is not None


def test_revin_makes_the_task_scale_free():
    task = tiny_task().eval()
    x = torch.randn(2, 1, 64)
    torch.manual_seed(0)
    a = task(x)[1][0][0]
    torch.manual_seed(0)
    b = task(100 * x + 7)[1][0][0]
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


def test_pits_complementary_views_cover_every_patch_once():
    from vtrep.backbones.series_mlp import PatchMLPEncoder
    from vtrep.masking.series import ComplementaryPatchMasking

    encoder = PatchMLPEncoder(context_length=64, patch_length=8, stride=8, d_model=16)
    task = SeriesMAETask(encoder, ComplementaryPatchMasking(0.5), contrastive_weight=0.1)
    target, outputs = task(torch.randn(4, 2, 64))
    (pred1, masked1, _), (pred2, masked2, _) = outputs
    assert torch.equal(masked1, ~masked2)
    loss = task.loss(target, outputs)
    loss.backward()
    assert torch.isfinite(loss) and encoder.mlp[0].weight.grad is not None
    # patch independence: changing one patch changes only that patch's tokens
    patches = torch.randn(1, 1, 8, 8)
    changed = patches.clone()
    changed[0, 0, 3] += 1
    delta = (encoder.eval()(changed) - encoder(patches)).abs().sum(-1)[0, 0]
    assert delta[3] > 0 and (delta[torch.arange(8) != 3] == 0).all()


def test_hierarchical_contrastive_prefers_matching_views():
    from vtrep.objectives.contrastive import hierarchical_contrastive_loss

    torch.manual_seed(0)
    z = torch.nn.functional.normalize(torch.randn(6, 8, 16), dim=-1) * 4
    matched = hierarchical_contrastive_loss(z, z + 0.01 * torch.randn_like(z))
    shuffled = hierarchical_contrastive_loss(z, z[torch.randperm(6)].flip(1))
    assert matched < shuffled
    with pytest.raises(ValueError, match="same shape"):
        hierarchical_contrastive_loss(z, z[:, :4])
