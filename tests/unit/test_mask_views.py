"""Mask pictures and the moving-object ground truth."""

import numpy as np
import torch

from datamodules.video.generated_object import moving_object_batch, moving_object_clip
from vtrep.backbones import VideoViT
from vtrep.decoders.mae_decoder import MAEDecoderConfig
from vtrep.masking import AdaMAESampler, TubeMasking
from vtrep.reports.mask_views import draw_masks, heat_colours, token_values_to_frames
from vtrep.tasks import VideoMAETask


def test_token_values_cover_their_tubelet_and_patch():
    values = torch.arange(2 * 2 * 3, dtype=torch.float).view(1, -1)  # grid (2, 2, 3)
    frames = token_values_to_frames(values, (2, 2, 3), patch_size=4, tubelet_size=2)
    assert frames.shape == (1, 4, 8, 12)
    # token (t=1, h=0, w=2) has index 1*6 + 0*3 + 2 = 8 and covers frames 2-3, rows 0-3, cols 8-11
    assert (frames[0, 2:4, 0:4, 8:12] == 8).all()
    assert heat_colours(torch.tensor([0.0, 1.0])).tolist() == [[0, 0, 0], [1, 1, 1]]


def test_moving_object_mask_is_the_only_change():
    clip, mask = moving_object_clip(np.random.default_rng(3), 8, 32)
    background = ~mask.any(axis=0)
    assert background.any() and mask.any(axis=(1, 2)).all()
    # outside every object position the clip is the same flat colour in every frame
    values = clip[:, background]
    assert np.allclose(values, values[0, 0])
    video, masks = moving_object_batch(2, seed=1)
    assert video.shape == (2, 3, 8, 32, 32) and masks.shape == (2, 8, 32, 32)


def test_draw_masks_rows_per_strategy():
    backbone = lambda: VideoViT(img_size=16, num_frames=4, patch_size=4, tubelet_size=2, embed_dim=16, depth=1,
                                num_heads=2)
    video = torch.randn(2, 3, 4, 16, 16)
    sizes = {}
    for name, masking in (("tube", TubeMasking(0.75)), ("adamae", AdaMAESampler(0.75, num_heads=2))):
        task = VideoMAETask(backbone(), masking, MAEDecoderConfig(16, 1, 2), batch_size_for_lr=2).eval()
        sizes[name] = draw_masks(task, video).shape
    # 2 clips x (input, visible) rows for tube; one more heatmap row per clip for AdaMAE
    assert sizes["tube"][1] == 2 + 4 * (16 + 2) and sizes["adamae"][1] == 2 + 6 * (16 + 2)
