"""Recognise a tensor on the host without reading its values: the tensor object and its in-place version.

Comparing values (``torch.equal``, ``bool(tensor)``) makes the host wait for the device. Every in-place write
increments ``tensor._version``, so "this very tensor, unchanged since" is decided on the host from a key of the
tensor and that counter. The key holds the tensor itself, so its ``id`` cannot be reused by another tensor
while the key lives.
"""

from __future__ import annotations

import torch

TensorKey = tuple[torch.Tensor, int]


def tensor_key(tensor: torch.Tensor) -> TensorKey:
    """``tensor`` and its in-place version, for :func:`same_tensor`."""
    return tensor, tensor._version


def same_tensor(key: TensorKey | None, tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` is the one ``key`` was taken from, unmodified since (``False`` for no key)."""
    return key is not None and key[0] is tensor and key[1] == tensor._version
