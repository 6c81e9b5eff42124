"""One VideoMAE pretraining step — forward, backward, AdamW — vtrep vs Hugging Face ``transformers``.

Both models have the same sizes (ViT-S encoder 384×12, 6 heads; decoder 192×4, 3 heads; tubelet 2,
patch 16; 16×112×112 clips; batch 4; tube mask 0.9; VideoMAE-normalised pixel target) and the
same optimiser (fused AdamW). Runs are interleaved round by round in one process so machine noise
hits both; the median over rounds is reported with the ratio ``transformers_time / vtrep_time``
(> 1 means vtrep is faster), for each precision (fp32, bf16 autocast) and mode (eager,
``torch.compile``).

Model FLOPs utilisation (MFU) divides each model's counted forward + backward FLOPs
(``torch.utils.flop_counter``, matmuls and attention) by its step time and by this machine's
measured matmul peak in that precision (best of a few square GEMMs), so it says how much of the
hardware each implementation uses. On a CPU without native bf16 (no AVX-512-BF16/AMX; the script
prints which) bf16 matmuls are emulated and far slower than fp32: the bf16 figures then measure
the emulation, not the models.

    python tools/bench/videomae_step.py --rounds 5 --steps 3 --precision '[fp32, bf16]' --mode '[eager, compiled]'
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

Step = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Runner = tuple[torch.nn.Module, torch.optim.Optimizer, Step]


def build_vtrep(frames: int, size: int, mask_ratio: float, device: str = "cpu") -> Runner:
    from vtrep.backbones import create_video_vit
    from vtrep.decoders import MAEDecoderConfig
    from vtrep.masking import TubeMasking
    from vtrep.optim import weight_decay_groups
    from vtrep.tasks import VideoMAETask

    backbone = create_video_vit("small", img_size=size, num_frames=frames)
    task = VideoMAETask(backbone, TubeMasking(mask_ratio), MAEDecoderConfig(192, 4, 3), export_encoder=False).to(device)
    optimizer = torch.optim.AdamW(weight_decay_groups(task, 0.05), lr=1e-4, betas=(0.9, 0.95), fused=True)

    def loss_of(video: torch.Tensor, _mask: torch.Tensor) -> torch.Tensor:
        _, mask, rec = task(video)
        return task.loss_parts(mask, rec)[0]

    return task, optimizer, loss_of


def build_transformers(frames: int, size: int, device: str = "cpu") -> Runner:
    from transformers import VideoMAEConfig, VideoMAEForPreTraining

    config = VideoMAEConfig(
        image_size=size, patch_size=16, num_channels=3, num_frames=frames, tubelet_size=2,
        hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536,
        decoder_hidden_size=192, decoder_num_hidden_layers=4, decoder_num_attention_heads=3,
        decoder_intermediate_size=768, norm_pix_loss=True, layer_norm_eps=1e-6, use_mean_pooling=False,
        attn_implementation="sdpa",
    )
    model = VideoMAEForPreTraining(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05, fused=True)

    def loss_of(video: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return model(pixel_values=video.transpose(1, 2), bool_masked_pos=mask).loss

    return model, optimizer, loss_of


def timed_steps(loss_of: Step, optimizer: torch.optim.Optimizer, video: torch.Tensor, mask: torch.Tensor,
                steps: int, precision: str) -> float:
    """Mean seconds of ``steps`` full optimiser steps."""
    times = []
    for _ in range(steps):
        _sync(video.device)
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(video.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = loss_of(video, mask)
        loss.backward()
        optimizer.step()
        _sync(video.device)  # CUDA runs asynchronously: time the work, not its launch
        times.append(time.perf_counter() - start)
    return statistics.mean(times)


def step_flops(loss_of: Step, video: torch.Tensor, mask: torch.Tensor) -> int:
    """Forward + backward FLOPs of one step (eager, fp32; the count does not depend on precision)."""
    counter = FlopCounterMode(display=False)
    with counter:
        loss_of(video, mask).backward()
    return counter.get_total_flops()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(dtype: torch.dtype, n: int = 1024, repeats: int = 5, device: str = "cpu") -> float:
    """Best FLOP/s of an ``n``-square matmul in ``dtype`` on this machine, over ``mm`` and ``linear``
    (without native bf16 the two take different emulation paths, ``linear`` the faster one)."""
    a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)
    best = float("inf")
    for matmul in (torch.mm, torch.nn.functional.linear):
        matmul(a, b)
        for _ in range(repeats):
            _sync(a.device)
            start = time.perf_counter()
            matmul(a, b)
            _sync(a.device)
            best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def main(rounds: int = 5, steps: int = 3, warmup: int = 2, batch: int = 4, frames: int = 16, size: int = 112,
         mask_ratio: float = 0.9, precision: list[str] = ["fp32", "bf16"],  # noqa: B006 - CLI default
         mode: list[str] = ["eager", "compiled"], device: str = "cpu") -> None:  # noqa: B006 - CLI default
    """Time vtrep and transformers pretraining steps, interleaved.

    Args:
        rounds: interleaved rounds; the median over rounds is reported.
        steps: timed steps per model per round.
        warmup: untimed steps per model before timing (compilation happens here).
        batch: clips per step.
        frames: clip length.
        size: frame side.
        mask_ratio: tube mask ratio.
        precision: any of "fp32", "bf16" (autocast on ``device``).
        mode: any of "eager", "compiled" (``torch.compile`` of each model's forward + loss).
        device: ``cpu`` (default) or ``cuda``; on CUDA each step is timed up to a ``synchronize`` and
            the peak is a CUDA matmul's (fp32 then runs in full fp32, not TF32, as torch's default).
    """
    from vtrep.hardware import cpu_bf16_native
    from vtrep.masking import TubeMasking

    torch.manual_seed(0)
    video = torch.randn(batch, 3, frames, size, size).to(device)
    hf_mask = TubeMasking(mask_ratio)(batch, (frames // 2, size // 16, size // 16)).mask.to(device)
    runners = {"vtrep": build_vtrep(frames, size, mask_ratio, device),
               "transformers": build_transformers(frames, size, device)}
    flops = {name: step_flops(loss_of, video, hf_mask) for name, (_, _, loss_of) in runners.items()}
    peaks = {"fp32": matmul_peak(torch.float32, device=device), "bf16": matmul_peak(torch.bfloat16, device=device)}
    if video.device.type == "cpu":
        where = f"cpu={torch.backends.cpu.get_cpu_capability()} native_bf16={cpu_bf16_native()}"
    else:
        where = f"device={torch.cuda.get_device_name(video.device)}"
    print(f"threads={torch.get_num_threads()} batch={batch} clip={frames}x{size}x{size} mask={mask_ratio} "
          f"torch={torch.__version__} {where}")
    print("step GFLOP (fwd+bwd): " + ", ".join(f"{n} {f / 1e9:.1f}" for n, f in flops.items())
          + " | matmul peak GFLOP/s: " + ", ".join(f"{p} {v / 1e9:.0f}" for p, v in peaks.items()))
    for how in mode:
        steppers = {name: (opt, torch.compile(loss_of) if how == "compiled" else loss_of)
                    for name, (_, opt, loss_of) in runners.items()}
        for prec in precision:
            report(steppers, video, hf_mask, prec, how, rounds, steps, warmup, flops, peaks[prec])


def report(steppers: dict, video: torch.Tensor, mask: torch.Tensor, prec: str, how: str, rounds: int, steps: int,
           warmup: int, flops: dict[str, int], peak: float) -> None:
    for opt, loss_of in steppers.values():
        timed_steps(loss_of, opt, video, mask, warmup, prec)
    per_round: dict[str, list[float]] = {name: [] for name in steppers}
    for _ in range(rounds):
        for name, (opt, loss_of) in steppers.items():
            per_round[name].append(timed_steps(loss_of, opt, video, mask, steps, prec))
    med = {name: statistics.median(ts) for name, ts in per_round.items()}
    mfu = {name: flops[name] / med[name] / peak for name in med}
    ratios = [h / v for h, v in zip(per_round["transformers"], per_round["vtrep"])]
    print(f"[{prec} {how}] vtrep {med['vtrep'] * 1e3:.0f} ms/step (MFU {mfu['vtrep']:.0%}) | transformers "
          f"{med['transformers'] * 1e3:.0f} ms/step (MFU {mfu['transformers']:.0%}) | ratio transformers/vtrep = "
          f"{statistics.median(ratios):.2f} (per-round min {min(ratios):.2f}, max {max(ratios):.2f})", flush=True)


if __name__ == "__main__":
    from jsonargparse import CLI

    CLI(main, as_positional=False)
