"""The one reading of a collated batch: its input tensor and, where it has one, its class label.

Datamodules deliver a bare tensor, a ``(input, label, ...)`` tuple or a dict with a named input
(``{"video": ...}``, ``{"features": ..., "meta": ...}``); every task, extractor and tool reads them here.
"""

from __future__ import annotations

from typing import Any

import torch


def batch_input(batch: Any, key: str) -> torch.Tensor:
    """The input tensor of ``batch``: itself, its first item, or ``batch[key]`` for a dict."""
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, dict):
        if key not in batch:
            raise ValueError(f"a dict batch needs a {key!r} entry, got keys {sorted(batch)}")
        return batch[key]
    if isinstance(batch, (tuple, list)) and batch:
        return batch[0]
    raise ValueError(f"cannot read an input from a batch of type {type(batch).__name__}")


def batch_input_and_label(batch: Any, key: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(input, class label or None)``; a second item that is not a 1-D integer tensor (a forecast target) is no label."""
    label = None
    if isinstance(batch, dict):
        label = batch.get("label")
    elif isinstance(batch, (tuple, list)) and len(batch) > 1:
        label = batch[1]
    if label is not None:
        label = torch.as_tensor(label)
        if label.dim() != 1 or label.is_floating_point():
            label = None
    return batch_input(batch, key), label
