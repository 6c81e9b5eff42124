"""What this machine computes fast: the check behind vtrep's warning on emulated CPU bf16.

CPU bf16 matmuls are fast only with native instructions (AVX-512-BF16 or AMX). Without them
oneDNN/MKL emulate bf16, and a ``bf16-mixed`` run is several times slower than fp32: on an AVX2
AMD EPYC (2 cores) a 1568×384 · 384×1536 matmul ran at 16 GFLOP/s in bf16 against 122 in fp32,
and a VideoMAE ViT-S step took 9.7 s instead of 0.56 s (``tools/bench/videomae_step.py``).
"""

from __future__ import annotations

import torch
from lightning.pytorch.utilities import rank_zero_warn


def cpu_bf16_native() -> bool:
    """Whether this CPU has native bf16 matmul instructions (oneDNN's own check)."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def slow_bf16_message(precision: str, accelerator: str) -> str | None:
    """The warning for ``precision`` on ``accelerator`` when bf16 would be emulated, else ``None``."""
    if accelerator != "cpu" or "bf16" not in str(precision) or cpu_bf16_native():
        return None
    capability = torch.backends.cpu.get_cpu_capability()
    return (f"trainer.precision={precision!r} on a CPU without native bf16 (capability {capability}, no "
            "AVX-512-BF16/AMX): bf16 matmuls are emulated and typically 5-20x slower than fp32 here. "
            "Use trainer.precision=32 (configs/trainer/cpu.yaml) on this machine.")


def warn_if_slow_bf16(trainer) -> str | None:
    """Warn (rank 0) when ``trainer`` would run bf16 autocast on a CPU that emulates it; returns the message."""
    accelerator = "cpu" if type(trainer.accelerator).__name__ == "CPUAccelerator" else "other"
    message = slow_bf16_message(str(trainer.precision), accelerator)
    if message is not None:
        rank_zero_warn(message)
    return message
