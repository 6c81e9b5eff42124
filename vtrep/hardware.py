"""What this machine computes fast: the check behind vtrep's warning on emulated CPU bf16, and the CPU
thread count of a run.

CPU bf16 matmuls are fast only with native instructions (AVX-512-BF16 or AMX). Without them
oneDNN/MKL emulate bf16, and a ``bf16-mixed`` run is several times slower than fp32: on an AVX2
AMD EPYC (2 cores) a 1568×384 · 384×1536 matmul ran at 16 GFLOP/s in bf16 against 122 in fp32,
and a VideoMAE ViT-S step took 9.7 s instead of 0.56 s (``tools/bench/videomae_step.py``).

Threads: torch starts one intra-op thread per core, and DataLoader workers are processes of their own
on the same cores, so a CPU run with loader workers oversubscribes the machine (oversubscribed, a TS2Vec
run on 2 cores took 62 s at torch's default against 23 s with one thread). ``vtrep`` therefore
sets ``torch.set_num_threads`` when a run starts: ``VTREP_NUM_THREADS`` when set, else, on the CPU
accelerator, ``max(1, cores // processes - num_workers)``; GPU runs (or an explicit ``OMP_NUM_THREADS``)
keep torch's default.
"""

from __future__ import annotations

import os

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


THREADS_ENV = "VTREP_NUM_THREADS"


def available_cores() -> int:
    """Cores this process may run on (a container's or ``taskset``'s share, not the whole machine)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_num_threads(cores: int, num_workers: int, processes: int = 1) -> int:
    """Threads per training process that leave one core to each of its loader workers."""
    return max(1, cores // max(processes, 1) - max(num_workers, 0))


def num_threads_setting(accelerator: str, num_workers: int, processes: int = 1,
                        env: dict[str, str] | None = None) -> int | None:
    """The intra-op thread count a run should use, or ``None`` to keep torch's default."""
    env = os.environ if env is None else env
    value = env.get(THREADS_ENV, "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"{THREADS_ENV}={value!r}: expected a whole number of threads >= 1")
        return int(value)
    if accelerator != "cpu" or env.get("OMP_NUM_THREADS"):  # the user's own choice stays
        return None
    return default_num_threads(available_cores(), num_workers, processes)


def apply_num_threads(trainer, datamodule=None) -> int | None:
    """Set torch's thread count for ``trainer``'s run (see the module docstring); returns what was set."""
    cpu = type(trainer.accelerator).__name__ == "CPUAccelerator"
    workers = getattr(datamodule, "num_workers", 0)
    processes = trainer.num_devices if cpu else 1
    threads = num_threads_setting("cpu" if cpu else "other", workers if isinstance(workers, int) else 0, processes)
    if threads is not None:
        torch.set_num_threads(threads)
    return threads
