"""Random-number state in checkpoints, so a resumed run draws what the uninterrupted run drew.

Lightning restores weights, optimiser, schedulers and loop counters, but not the generators: after a
resume the shuffling order (a ``RandomSampler`` seeds itself from torch's global generator when an
epoch's iterator is made, and DataLoader workers from that) and every mask drawn from then on differ.
This callback stores the global torch (and CUDA), NumPy and Python states with each checkpoint and
puts them back at the start of the first training epoch after a resume — the moment the uninterrupted
run was at when it saved (checkpoints are written at the end of an epoch, after its validation).
A run killed mid-epoch therefore resumes from the last end-of-epoch checkpoint and replays that
epoch exactly (``trainer.deterministic=True`` for bit-identical kernels).
"""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch


def capture_rng() -> dict[str, Any]:
    """The states as tensors and plain Python values: Lightning loads checkpoints with ``weights_only=True``,
    which refuses NumPy arrays."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    numpy_state = (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss))
    state = {"torch": torch.get_rng_state(), "numpy": numpy_state, "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class RNGStateCheckpoint(L.Callback):
    """Save the generators' states with every checkpoint; restore them when training resumes."""

    def __init__(self) -> None:
        self.pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        # per rank: under DDP each rank saves its own (rank 0's file holds rank 0's states)
        return {"rng": capture_rng()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.pending = state_dict.get("rng")

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.pending is not None:
            restore_rng(self.pending)
            self.pending = None
