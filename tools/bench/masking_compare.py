"""Masking strategies at equal optimiser steps on the embedded default data: cost and probe accuracy.

    python tools/bench/masking_compare.py --steps 600

Every strategy pretrains the same backbone from the same initialisation on the same cached
batches; steps are interleaved (one step of each strategy in turn, order rotated every step) so
machine noise falls on all alike. Then each encoder is linear-probed (MAE protocol) on the
generated clips. Printed: median step time, the memory a step holds (parameters, gradients,
AdamW moments, and activations saved for backward — CPU has no allocator peak counter; on CUDA
the allocator's peak is printed too), and probe top-1, next to a random-init encoder.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch
from bench_training import (
    StepStats,
    make_optimizer,
    saved_activation_bytes,
    state_bytes,
    train_step,
)


def strategies(sampler_dim: int, heads: int) -> dict:
    from vtrep.masking import AdaMAESampler, DualMasking, RandomMasking, TubeMasking

    return {
        "tube 0.9": lambda: TubeMasking(0.9),
        "random 0.9": lambda: RandomMasking(0.9),
        "AdaMAE 0.95 (reference sampler)": lambda: AdaMAESampler(0.95, num_heads=heads),
        f"AdaMAE 0.95 (light sampler: width {sampler_dim}, 1 head, no dropout, checkpointed)":
            lambda: AdaMAESampler(0.95, num_heads=1, sampler_dim=sampler_dim, dropout=0.0, checkpoint_sampler=True),
        "tube 0.9 + dual 0.5": lambda: DualMasking(TubeMasking(0.9), 0.5),
    }


def build_task(masking, sizes: dict, batch_size: int, device: str):
    from vtrep.backbones import VideoViT
    from vtrep.decoders.mae_decoder import MAEDecoderConfig
    from vtrep.tasks import VideoMAETask

    torch.manual_seed(0)  # the same backbone and decoder initialisation for every strategy
    backbone = VideoViT(img_size=32, num_frames=8, patch_size=4, tubelet_size=2, embed_dim=sizes["dim"],
                        depth=sizes["depth"], num_heads=sizes["heads"])
    decoder = MAEDecoderConfig(sizes["decoder_dim"], sizes["decoder_depth"], sizes["decoder_heads"])
    return VideoMAETask(backbone, masking, decoder, batch_size_for_lr=batch_size, num_viz_clips=0,
                        export_encoder=False).to(device)


def cached_data(batch_size: int):
    from datamodules import SyntheticVideoDataModule

    data = SyntheticVideoDataModule(num_per_class=250, num_frames=8, size=32, img_size=32, batch_size=batch_size,
                                    num_workers=0, min_scale=1.0)
    data.prepare_data()
    data.setup("fit")
    train = [video for video, _ in data.train_dataloader()]
    probe = {split: list(data.feature_dataloader(split)) for split in ("train", "val")}
    return train, probe, data.num_classes


def probe_top1(encoder, probe_batches: dict, num_classes: int, epochs: int) -> float:
    from vtrep.probes.linear_probe import extract_features, fit_linear_probe

    encoder = encoder.cpu()
    train_x, train_y = extract_features(encoder, probe_batches["train"])
    eval_x, eval_y = extract_features(encoder, probe_batches["val"])
    return fit_linear_probe(train_x, train_y, eval_x, eval_y, num_classes, epochs=epochs, seed=0).top1


def compare(steps: int = 400, batch_size: int = 32, dim: int = 96, depth: int = 12, heads: int = 3,
            decoder_dim: int = 48, decoder_depth: int = 4, decoder_heads: int = 3, sampler_dim: int = 24,
            base_lr: float = 1.6e-2, probe_epochs: int = 100, threads: int | None = None,
            device: str = "cpu", output: str | None = None) -> dict:
    """Run the comparison and print one table; optionally write the figures to ``output`` (JSON).

    Default sizes keep VideoMAE ViT-S's proportions (encoder 12 blocks, decoder 4 blocks at half the
    width) at a quarter of its width, for 256-token clips.
    """
    from vtrep.backbones import VideoViT

    if threads:
        torch.set_num_threads(threads)
    sizes = dict(dim=dim, depth=depth, heads=heads, decoder_dim=decoder_dim, decoder_depth=decoder_depth,
                 decoder_heads=decoder_heads)
    train, probe_batches, num_classes = cached_data(batch_size)
    runs = {}
    for name, make in strategies(sampler_dim, heads).items():
        task = build_task(make(), sizes, batch_size, device)
        stats = StepStats(state_bytes=state_bytes(task))
        stats.activation_bytes = saved_activation_bytes(task, train[0].to(device))
        runs[name] = (task, *make_optimizer(task, batch_size, steps, base_lr), stats)
    order, rng = list(runs), random.Random(0)
    for step in range(steps):
        video = train[rng.randrange(len(train))].to(device)
        for name in order[step % len(order):] + order[: step % len(order)]:
            task, optimizer, schedule, stats = runs[name]
            if video.is_cuda and step == 1:  # after the first step has allocated optimiser state
                torch.cuda.reset_peak_memory_stats()
            stats.times.append(train_step(task, optimizer, schedule, video))
            if video.is_cuda and step == 1:
                stats.cuda_peak_bytes = torch.cuda.max_memory_allocated()
    torch.manual_seed(0)
    random_encoder = VideoViT(img_size=32, num_frames=8, patch_size=4, tubelet_size=2, embed_dim=dim, depth=depth,
                              num_heads=heads)
    results = {"random init": {"probe_top1": probe_top1(random_encoder, probe_batches, num_classes, probe_epochs)}}
    for name, (task, _, _, stats) in runs.items():
        results[name] = {"step_ms": 1000 * stats.median_time, "activation_mib": stats.activation_bytes / 2**20,
                         "peak_mib": stats.peak_bytes / 2**20, "cuda_peak_mib": stats.cuda_peak_bytes / 2**20,
                         "probe_top1": probe_top1(task.backbone, probe_batches, num_classes, probe_epochs)}
    print_table(results, steps, batch_size, sizes)
    if output:
        Path(output).write_text(json.dumps({"steps": steps, "batch_size": batch_size, **sizes, "results": results},
                                           indent=2))
    return results


def print_table(results: dict, steps: int, batch_size: int, sizes: dict) -> None:
    print(f"{steps} steps, batch {batch_size}, 8x32x32 clips (256 tokens), encoder {sizes['dim']}x{sizes['depth']}, "
          f"decoder {sizes['decoder_dim']}x{sizes['decoder_depth']}, {torch.get_num_threads()} threads")
    print(f"| strategy | step (ms) | activations (MiB) | step memory (MiB) | probe top-1 |")
    print("| --- | --- | --- | --- | --- |")
    for name, r in results.items():
        cost = (f"{r['step_ms']:.1f} | {r['activation_mib']:.1f} | {r['peak_mib']:.1f}" if "step_ms" in r
                else "- | - | -")
        if r.get("cuda_peak_mib"):
            cost += f" (CUDA allocator peak {r['cuda_peak_mib']:.1f})"
        print(f"| {name} | {cost} | {100 * r['probe_top1']:.1f}% |")


if __name__ == "__main__":
    from jsonargparse import CLI

    CLI(compare, as_positional=False)
