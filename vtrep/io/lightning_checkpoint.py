"""The one reader of a Lightning fit checkpoint (``.ckpt``) for weights: its ``state_dict``, read safely."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from vtrep.io.torch_files import load_matching_state, load_torch_checkpoint


def lightning_state_dict(path: str | os.PathLike, name: str = "ckpt_path") -> dict[str, torch.Tensor]:
    """The ``state_dict`` of a Lightning checkpoint, read with ``torch.load(weights_only=True)``.

    A file that would unpickle code is refused unread; a missing file, a truncated one or one without a
    ``state_dict`` is an error naming the file (``name`` is the setting the user gave it under).
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"{name}={str(path)!r} does not exist")
    checkpoint = load_torch_checkpoint(path)
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"{path} is not a Lightning checkpoint: it has no 'state_dict' entry")
    return state


def load_submodule_weights(module: nn.Module, path: str | os.PathLike, prefix: str, name: str = "ckpt_path") -> None:
    """Load the ``<prefix>.*`` weights of a fit checkpoint into ``module`` (names and shapes must match exactly)."""
    state = lightning_state_dict(path, name)
    weights = {k[len(prefix) + 1:]: v for k, v in state.items() if k.startswith(prefix + ".")}
    if not weights:
        raise ValueError(f"{path} holds no '{prefix}.*' weights; it is not a checkpoint of a task with that module")
    load_matching_state(module, weights, str(path), f"the {type(module).__name__} {prefix}")
