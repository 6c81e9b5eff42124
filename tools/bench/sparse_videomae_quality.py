"""Sparse vs dense VideoMAE on long generated clips: equal steps, reconstruction loss, linear probe, wall clock.

    python tools/bench/sparse_videomae_quality.py                 # 64 frames, 2048 tokens a clip
    python tools/bench/sparse_videomae_quality.py --steps 40 --num_train 64 --num_eval 32   # a quick look

Clips are the project's moving dots (``datamodules.video.generated.render_clip``; label = direction
of motion, 4 classes) at 64 frames of 32², cut into 4×4×2 tubelets: 32 steps × 64 tokens. Both
models are the same VideoMAE (tube masking, 0.9 by default; encoder and decoder ViTs, identical initial
weights and batches; the quickstart's base lr 1.6e-2, i.e. 5e-4 at batch 8); the sparse one runs a local window of ±``window`` tubelet steps in encoder
and decoder on the blocked backend (one 64-token block per step). After equal steps we compare
the held-out reconstruction loss (fixed masks) and a linear probe on frozen, mean-pooled encoder
features of all 2048 tokens (the probe sees the sparse encoder's own attention), and print the
wall-clock ratio of the training steps. A random-init encoder's probe is printed for scale.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from bench_training import make_optimizer, train_step


def long_clips(count: int, num_frames: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(count, 3, T, H, W)`` normalised clips and their direction labels, balanced over the 4 classes."""
    from datamodules.video.generated import DIRECTIONS, render_clip
    from datamodules.video.transforms import IMAGENET_MEAN, IMAGENET_STD

    rng = np.random.default_rng(seed)
    directions = list(DIRECTIONS.values())
    labels = torch.arange(count) % len(directions)
    clips = np.stack([render_clip(rng, directions[int(y)], num_frames, size) for y in labels])
    video = torch.from_numpy(clips).float().div(255).permute(0, 4, 1, 2, 3)  # (B, C, T, H, W)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1, 1) for v in (IMAGENET_MEAN, IMAGENET_STD))
    return (video - mean) / std, labels


def build_task(sparse: bool, window: int, num_frames: int, size: int, mask_ratio: float, seed: int):
    from vtrep.attention import LocalWindow
    from vtrep.backbones import VideoViT
    from vtrep.decoders.mae_decoder import MAEDecoderConfig
    from vtrep.masking import TubeMasking
    from vtrep.tasks import VideoMAETask

    attention = dict(attention_pattern=LocalWindow(window), attention_backend="blocked") if sparse else {}
    torch.manual_seed(seed)  # identical initial weights: the pattern adds no parameters
    backbone = VideoViT(img_size=size, num_frames=num_frames, patch_size=4, tubelet_size=2, embed_dim=96, depth=4,
                        num_heads=3, **attention)
    decoder = MAEDecoderConfig(dim=64, depth=2, num_heads=2, **attention)
    return VideoMAETask(backbone, TubeMasking(mask_ratio), decoder, batch_size_for_lr=8, num_viz_clips=0,
                        export_encoder=False)


@torch.no_grad()
def heldout_loss(task, video: torch.Tensor, seed: int, batch_size: int = 16) -> float:
    """Mean reconstruction loss on ``video`` with masks drawn from a fixed seed (same masks for both models)."""
    task.eval()
    losses = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for chunk in video.split(batch_size):
            _, mask, rec = task(chunk)
            losses.append(task.loss_parts(mask, rec)[0].item() * len(chunk))
    task.train()
    return sum(losses) / len(video)


@torch.no_grad()
def features(backbone, video: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
    backbone.eval()
    out = torch.cat([backbone(chunk) for chunk in video.split(batch_size)])
    backbone.train()
    return out


def probe_accuracy(backbone, train, evaluation) -> float:
    from vtrep.probes.linear_probe import fit_linear_probe

    (train_x, train_y), (eval_x, eval_y) = train, evaluation
    return fit_linear_probe(features(backbone, train_x), train_y, features(backbone, eval_x), eval_y, 4).top1


def compare(steps: int = 300, batch_size: int = 8, num_train: int = 256, num_eval: int = 128, num_frames: int = 64,
            size: int = 32, window: int = 2, base_lr: float = 1.6e-2, mask_ratio: float = 0.9, seed: int = 0,
            output: str | None = None) -> dict:
    """Pretrain the dense and the sparse VideoMAE for ``steps`` on the same batches and compare them."""
    train = long_clips(num_train, num_frames, size, seed)
    evaluation = long_clips(num_eval, num_frames, size, seed + 1)
    results = {}
    for name, sparse in (("dense", False), ("sparse", True)):
        task = build_task(sparse, window, num_frames, size, mask_ratio, seed)
        if name == "dense":
            results["random_init_probe"] = probe_accuracy(task.backbone, train, evaluation)
        optimizer, schedule = make_optimizer(task, batch_size, steps, base_lr)
        generator = torch.Generator().manual_seed(seed)
        times = []
        for _ in range(steps):
            batch = train[0][torch.randint(0, num_train, (batch_size,), generator=generator)]
            times.append(train_step(task, optimizer, schedule, batch))
        start = time.perf_counter()
        results[name] = {"step_s": float(np.median(times)), "train_s": sum(times),
                         "heldout_loss": heldout_loss(task, evaluation[0], seed),
                         "probe_top1": probe_accuracy(task.backbone, train, evaluation),
                         "eval_s": time.perf_counter() - start}
        print(f"{name}: {results[name]}", flush=True)
    dense, sparse = results["dense"], results["sparse"]
    results["loss_ratio"] = sparse["heldout_loss"] / dense["heldout_loss"]
    results["probe_gap_points"] = 100 * (dense["probe_top1"] - sparse["probe_top1"])
    results["step_time_ratio"] = dense["step_s"] / sparse["step_s"]
    tokens = (num_frames // 2) * (size // 4) ** 2
    print(f"{num_frames} frames, {tokens} tokens, {steps} steps of batch {batch_size}, window ±{window} steps")
    print(f"held-out loss: dense {dense['heldout_loss']:.4f}, sparse {sparse['heldout_loss']:.4f} "
          f"(sparse / dense {results['loss_ratio']:.3f})")
    print(f"linear probe: dense {100 * dense['probe_top1']:.1f}%, sparse {100 * sparse['probe_top1']:.1f}% "
          f"(gap {results['probe_gap_points']:+.1f} points; random-init encoder {100 * results['random_init_probe']:.1f}%)")
    print(f"training step: dense {dense['step_s']:.3f} s, sparse {sparse['step_s']:.3f} s "
          f"(sparse is {results['step_time_ratio']:.2f}x faster)")
    if output:
        Path(output).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    from jsonargparse import CLI

    CLI(compare, as_positional=False)
