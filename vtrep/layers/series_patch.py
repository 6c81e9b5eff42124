"""Patching of series as PatchTST does it: patches end at the last timestep (left-trim)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vtrep.layers.revin import RevIN


def num_series_patches(length: int, patch_length: int, stride: int) -> int:
    """PatchTST's count: ``(max(L, P) − P) // S + 1``."""
    if patch_length < 1 or stride < 1:
        raise ValueError(f"patch_length and stride must be >= 1, got {patch_length}, {stride}")
    return (max(length, patch_length) - patch_length) // stride + 1


def patch_geometry(module, context_length: int, patch_length: int, stride: int, pad_end: bool = False) -> None:
    """Set ``context_length``, ``patch_length``, ``stride``, ``pad_end`` and ``num_patches`` on a series encoder.

    ``pad_end``: the series is padded with ``stride`` copies of its last step before patching (PatchTST's
    ``padding_patch='end'``), one patch more.
    """
    if context_length < patch_length:
        raise ValueError(f"context_length={context_length} is shorter than patch_length={patch_length}")
    module.context_length, module.patch_length, module.stride = context_length, patch_length, stride
    module.pad_end = pad_end
    module.num_patches = num_series_patches(context_length + (stride if pad_end else 0), patch_length, stride)


def patchify_series(x: torch.Tensor, patch_length: int, stride: int) -> torch.Tensor:
    """``x (B, C, T)`` → patches ``(B, C, Np, P)``.

    The first ``L − (P + S·(Np − 1))`` steps are dropped so the last patch ends at the last step
    (PatchTST's ``create_patch``); a series shorter than one patch is an error.
    """
    length = x.shape[-1]
    if length < patch_length:
        raise ValueError(f"series of length {length} is shorter than patch_length={patch_length}")
    count = num_series_patches(length, patch_length, stride)
    kept = patch_length + stride * (count - 1)
    return x[..., length - kept:].unfold(dimension=-1, size=patch_length, step=stride)


def encoder_patches(x: torch.Tensor, encoder, revin: RevIN | None, name: str = "series") -> torch.Tensor:
    """The input stage shared by series tasks and feature extraction: ``x (B, C, T)`` → ``(B, C, Np, P)``.

    Checks ``x`` against the encoder's ``context_length`` and for NaN (variable-length padding) or inf,
    normalises it with ``revin`` when given, pads its end when the encoder does (``pad_end``), and patches it
    with the encoder's patch length and stride.
    """
    if x.ndim != 3 or x.shape[-1] != encoder.context_length:
        raise ValueError(f"expected {name} (B, C, {encoder.context_length}), got {tuple(x.shape)}")
    if not torch.isfinite(x).all():  # one check on the common path; inf would become NaN in RevIN or the encoder
        if torch.isnan(x).any():
            raise ValueError(f"{name} contain NaN (variable-length padding?); load them with nan_to_zero=True")
        raise ValueError(f"{name} contain inf; series must be finite (the loaders reject inf in files)")
    if revin is not None:
        x = revin.normalise(x)
    if encoder.pad_end:
        x = F.pad(x, (0, encoder.stride), mode="replicate")
    return patchify_series(x, encoder.patch_length, encoder.stride)
