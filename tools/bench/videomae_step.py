"""One VideoMAE pretraining step — forward, backward, AdamW — vtrep vs Hugging Face ``transformers``.

Both models have the same sizes (ViT-S encoder 384×12, 6 heads; decoder 192×4, 3 heads; tubelet 2,
patch 16; 16×112×112 clips; batch 4; tube mask 0.9; VideoMAE-normalised pixel target) and the
same optimiser (fused AdamW). Runs are interleaved round by round in one process so machine noise
hits both; the median over rounds is reported with the ratio ``transformers_time / vtrep_time``
(> 1 means vtrep is faster).

    python tools/bench/videomae_step.py --rounds 5 --steps 3 --precision '[fp32, bf16]'
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch

Step = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def build_vtrep(frames: int, size: int, mask_ratio: float) -> tuple[torch.optim.Optimizer, Step]:
    from vtrep.backbones import create_video_vit
    from vtrep.decoders import MAEDecoderConfig
    from vtrep.masking import TubeMasking
    from vtrep.optim import weight_decay_groups
    from vtrep.tasks import VideoMAETask

    backbone = create_video_vit("small", img_size=size, num_frames=frames)
    task = VideoMAETask(backbone, TubeMasking(mask_ratio), MAEDecoderConfig(192, 4, 3), export_encoder=False)
    optimizer = torch.optim.AdamW(weight_decay_groups(task, 0.05), lr=1e-4, betas=(0.9, 0.95), fused=True)

    def step(video: torch.Tensor, _mask: torch.Tensor) -> torch.Tensor:
        _, mask, rec = task(video)
        loss = task.loss_parts(mask, rec)[0]
        loss.backward()
        return loss

    return optimizer, step


def build_transformers(frames: int, size: int) -> tuple[torch.optim.Optimizer, Step]:
    from transformers import VideoMAEConfig, VideoMAEForPreTraining

    config = VideoMAEConfig(
        image_size=size, patch_size=16, num_channels=3, num_frames=frames, tubelet_size=2,
        hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536,
        decoder_hidden_size=192, decoder_num_hidden_layers=4, decoder_num_attention_heads=3,
        decoder_intermediate_size=768, norm_pix_loss=True, layer_norm_eps=1e-6, use_mean_pooling=False,
        attn_implementation="sdpa",
    )
    model = VideoMAEForPreTraining(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05, fused=True)

    def step(video: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out = model(pixel_values=video.transpose(1, 2), bool_masked_pos=mask)
        out.loss.backward()
        return out.loss

    return optimizer, step


def timed_steps(step: Step, optimizer: torch.optim.Optimizer, video: torch.Tensor, mask: torch.Tensor,
                steps: int, precision: str) -> float:
    """Mean seconds of ``steps`` full optimiser steps."""
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            step(video, mask)
        optimizer.step()
        times.append(time.perf_counter() - start)
    return statistics.mean(times)


def main(rounds: int = 5, steps: int = 3, warmup: int = 2, batch: int = 4, frames: int = 16, size: int = 112,
         mask_ratio: float = 0.9, precision: list[str] = ["fp32", "bf16"]) -> None:  # noqa: B006 - CLI default
    """Time vtrep and transformers pretraining steps, interleaved.

    Args:
        rounds: interleaved rounds; the median over rounds is reported.
        steps: timed steps per model per round.
        warmup: untimed steps per model before timing.
        batch: clips per step.
        frames: clip length.
        size: frame side.
        mask_ratio: tube mask ratio.
        precision: any of "fp32", "bf16" (CPU autocast).
    """
    from vtrep.masking import TubeMasking

    torch.manual_seed(0)
    video = torch.randn(batch, 3, frames, size, size)
    hf_mask = TubeMasking(mask_ratio)(batch, (frames // 2, size // 16, size // 16)).mask
    runners = {"vtrep": build_vtrep(frames, size, mask_ratio), "transformers": build_transformers(frames, size)}
    print(f"threads={torch.get_num_threads()} batch={batch} clip={frames}x{size}x{size} mask={mask_ratio} "
          f"torch={torch.__version__}")
    for prec in precision:
        for opt, step in runners.values():
            timed_steps(step, opt, video, hf_mask, warmup, prec)
        per_round: dict[str, list[float]] = {name: [] for name in runners}
        for _ in range(rounds):
            for name, (opt, step) in runners.items():
                per_round[name].append(timed_steps(step, opt, video, hf_mask, steps, prec))
        med = {name: statistics.median(ts) for name, ts in per_round.items()}
        ratios = [h / v for h, v in zip(per_round["transformers"], per_round["vtrep"])]
        print(f"[{prec}] vtrep {med['vtrep'] * 1e3:.0f} ms/step | transformers {med['transformers'] * 1e3:.0f} "
              f"ms/step | ratio transformers/vtrep = {statistics.median(ratios):.2f} "
              f"(per-round min {min(ratios):.2f}, max {max(ratios):.2f})")


if __name__ == "__main__":
    from jsonargparse import CLI

    CLI(main, as_positional=False)
