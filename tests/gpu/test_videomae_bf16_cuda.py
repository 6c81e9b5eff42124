"""A VideoMAE step in bf16 autocast on CUDA: a finite loss and gradients, close to the fp32 step."""

from __future__ import annotations

import pytest
import torch

from vtrep.backbones import create_video_vit
from vtrep.decoders import MAEDecoderConfig
from vtrep.masking import TubeMasking
from vtrep.tasks import VideoMAETask

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none is visible)")]


def loss_and_grads(task: VideoMAETask, video: torch.Tensor, autocast: bool):
    task.zero_grad(set_to_none=True)
    torch.manual_seed(1)  # the same tube mask in both precisions
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
        _, mask, rec = task(video)
        loss = task.loss_parts(mask, rec)[0]
    loss.backward()
    return loss.detach().float(), {n: p.grad.detach().clone() for n, p in task.named_parameters() if p.grad is not None}


def test_bf16_autocast_step_is_finite_and_matches_fp32():
    torch.manual_seed(0)
    backbone = create_video_vit("small", img_size=64, num_frames=8, depth=2)
    task = VideoMAETask(backbone, TubeMasking(0.9), MAEDecoderConfig(192, 1, 3), export_encoder=False).cuda()
    video = torch.randn(4, 3, 8, 64, 64, device="cuda")
    loss32, grads32 = loss_and_grads(task, video, autocast=False)
    loss16, grads16 = loss_and_grads(task, video, autocast=True)
    assert torch.isfinite(loss16) and all(torch.isfinite(g).all() for g in grads16.values())
    # bf16 keeps 8 mantissa bits (~0.4 % per rounding): the loss agrees to a few per cent
    torch.testing.assert_close(loss16, loss32, rtol=3e-2, atol=1e-3)
    assert grads16.keys() == grads32.keys()
    for name, g32 in grads32.items():  # direction, not elementwise: tiny entries carry bf16's relative noise
        cosine = torch.nn.functional.cosine_similarity(grads16[name].flatten(), g32.flatten(), dim=0)
        assert cosine > 0.95, f"{name}: cosine {float(cosine):.3f} between bf16 and fp32 gradients"
