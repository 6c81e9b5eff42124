"""Helpers shared by the masking experiments: a short training loop with per-step timing and memory.

The loop is the task's own optimiser set-up (AdamW groups, warmup + cosine) driven without a
Trainer so that each step can be timed and measured on its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from vtrep.optim import WarmupCosine, scaled_lr, weight_decay_groups


@dataclass
class StepStats:
    """Per-step wall times (s) and the memory of one measured step (bytes)."""

    times: list[float] = field(default_factory=list)
    activation_bytes: int = 0
    state_bytes: int = 0
    cuda_peak_bytes: int = 0

    @property
    def median_time(self) -> float:
        ordered = sorted(self.times)
        return ordered[len(ordered) // 2]

    @property
    def peak_bytes(self) -> int:
        return self.activation_bytes + self.state_bytes


def saved_activation_bytes(task: torch.nn.Module, video: torch.Tensor) -> int:
    """Bytes of distinct tensors autograd keeps for backward in one forward pass (parameters excluded).

    On CPU there is no allocator peak counter; what a masking strategy changes is exactly this
    memory, which is held until the backward pass and sets the training peak together with the
    parameter, gradient and optimiser state.
    """
    params = {p.untyped_storage().data_ptr() for p in task.parameters()}
    seen: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in params:
            seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        _, mask, rec = task(video)
        loss, _ = task.loss_parts(mask, rec)
    loss.backward()
    task.zero_grad(set_to_none=True)
    return sum(seen.values())


def make_optimizer(task: torch.nn.Module, batch_size: int, steps: int, base_lr: float, warmup_fraction: float = 0.1):
    groups = weight_decay_groups(task, 0.05)
    optimizer = torch.optim.AdamW(groups, lr=scaled_lr(base_lr, batch_size), betas=(0.9, 0.95), fused=True)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(steps, int(warmup_fraction * steps), 0.0))
    return optimizer, schedule


def train_step(task, optimizer, schedule, video: torch.Tensor) -> float:
    """One optimiser step; returns its wall time in seconds."""
    start = time.perf_counter()
    _, mask, rec = task(video)
    loss, _ = task.loss_parts(mask, rec)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    schedule.step()
    if video.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def state_bytes(task: torch.nn.Module) -> int:
    """Parameters, gradients and AdamW's two moments: four copies of every trainable parameter."""
    return 4 * sum(p.numel() * p.element_size() for p in task.parameters() if p.requires_grad)
