"""Token-level features of a frozen encoder, written with their metadata as shards (``datamodules.features.shards``).

Video (``VIDEO_META``): every token of every clip, ``(B·N, D)``, with ``clip, t, h, w, label`` —
``clip`` is the clip's index in its split (loader order; a video skipped as unreadable leaves its number
unused, see :mod:`vtrep.eval.extract_skips`), ``(t, h, w)`` is the token's place in the grid (tokens are
t-major), ``label`` is the clip's class or −1 when the loader gives none.

Series (``SERIES_META``): ``series, channel, patch, label``. A patch encoder (PatchTST, PITS) is
channel-independent, so each channel's patches are tokens ``(B·C·Np, D)`` and ``patch`` is the
patch index (patches end at the last step, see :func:`~vtrep.layers.series_patch.patchify_series`).
A step encoder (TS2Vec's dilated convolutions) mixes channels: its tokens are time steps
``(B·T, D)`` with ``channel = −1`` and ``patch`` the step index.

Pooled (``POOLED_META``): one row per clip or series, ``item, label`` — the encoder's own pooling
for video (``VideoViT.forward``), TS2Vec's max over patches/steps for series
(:func:`~vtrep.eval.series_features.series_representations`) — what the linear probes read.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from datamodules.features.shards import FeatureShardWriter
from vtrep.io.batches import batch_input_and_label
from vtrep.layers.revin import RevIN
from vtrep.layers.series_patch import encoder_patches

VIDEO_META = ["clip", "t", "h", "w", "label"]
SERIES_META = ["series", "channel", "patch", "label"]
POOLED_META = ["item", "label"]


class ItemBatch(NamedTuple):
    """A batch with its items' indices in the split, from a loader that may leave bad items out."""

    items: torch.Tensor  # (B,) int64
    batch: Any


def _unpack(batch: Any, key: str, seen: int) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """``(input, label, item indices)``; a plain batch's items follow the ``seen`` before it."""
    items = None
    if isinstance(batch, ItemBatch):
        items, batch = batch.items, batch.batch
    x, label = batch_input_and_label(batch, key)
    return x, label, (seen + torch.arange(len(x))) if items is None else items.long().cpu()


def _labels(label: torch.Tensor | None, count: int) -> torch.Tensor:
    return torch.full((count,), -1, dtype=torch.long) if label is None else torch.as_tensor(label).long().cpu()


def grid_cells(*sizes: int) -> torch.Tensor:
    """Every cell of a grid of ``sizes`` in row-major order, ``(prod(sizes), len(sizes))``."""
    axes = torch.meshgrid(*(torch.arange(s) for s in sizes), indexing="ij")
    return torch.stack(axes, dim=-1).reshape(-1, len(sizes))


def _add_tokens(writer: FeatureShardWriter, tokens: torch.Tensor, cells: torch.Tensor, items: torch.Tensor,
                label: torch.Tensor | None) -> None:
    """Write tokens ``(B, M, D)`` with metadata ``item, *cells (M, c), label`` (``items (B,)``: their numbers)."""
    b, m, d = tokens.shape
    meta = torch.cat([items.repeat_interleave(m)[:, None], cells.repeat(b, 1),
                      _labels(label, b).repeat_interleave(m)[:, None]], dim=1)
    writer.add(tokens.reshape(b * m, d), meta)


def _check_meta(writer: FeatureShardWriter, names: list[str]) -> None:
    if writer.meta_names != names:
        raise ValueError(f"the writer's metadata must be {names}, got {writer.meta_names}")


@torch.no_grad()
def extract_video_tokens(backbone, loader, writer: FeatureShardWriter, device: str | torch.device = "cpu") -> int:
    """Encode every clip of ``loader`` with ``backbone`` (a ``VideoViT``) and add its tokens to ``writer``.

    Batches may be :class:`ItemBatch` (clips numbered by their split index). Returns the number of clips
    encoded; the caller closes the writer.
    """
    _check_meta(writer, VIDEO_META)
    backbone = backbone.eval().to(device)
    cells = grid_cells(*backbone.grid)  # (N, 3) in the encoder's t-major token order
    clips = 0
    for batch in loader:
        video, label, items = _unpack(batch, "video", clips)
        tokens = backbone.forward_features(video.to(device))  # (B, N, D)
        _add_tokens(writer, tokens, cells, items, label)
        clips += tokens.shape[0]
    return clips


def series_tokens(encoder, x: torch.Tensor, revin: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``x (B, C, T)`` → tokens ``(B, M, D)`` and each token's ``(channel, patch)`` ``(M, 2)``."""
    if getattr(encoder, "patch_length", None) is None:  # a step encoder: one token per time step
        tokens = encoder(x)  # (B, T, D)
        steps = torch.arange(tokens.shape[1])
        return tokens, torch.stack([torch.full_like(steps, -1), steps], dim=1)
    tokens = encoder(encoder_patches(x, encoder, RevIN(affine=False) if revin else None))  # (B, C, Np, D)
    b, c, p, d = tokens.shape
    return tokens.reshape(b, c * p, d), grid_cells(c, p)


@torch.no_grad()
def extract_series_tokens(encoder, loader, writer: FeatureShardWriter, revin: bool = True,
                          device: str | torch.device = "cpu") -> int:
    """Encode every series of ``loader`` (batches ``(x (B, C, T), label or target)``) and add its tokens.

    ``revin`` must match pretraining (a saved series encoder records it). Returns the number of series.
    """
    _check_meta(writer, SERIES_META)
    encoder = encoder.eval().to(device)
    count = 0
    for batch in loader:
        x, label = batch_input_and_label(batch, "series")
        tokens, cells = series_tokens(encoder, x.to(device).float(), revin)
        _add_tokens(writer, tokens, cells, count + torch.arange(tokens.shape[0]), label)
        count += tokens.shape[0]
    return count


@torch.no_grad()
def extract_pooled(encoder, loader, writer: FeatureShardWriter, kind: str, revin: bool = True,
                   device: str | torch.device = "cpu") -> int:
    """One pooled feature row per item of ``loader`` (``kind`` "video" or "series"; batches may be
    :class:`ItemBatch`); returns the count of items encoded."""
    from vtrep.eval.series_features import series_representations

    _check_meta(writer, POOLED_META)
    encoder = encoder.eval().to(device)
    count = 0
    for batch in loader:
        x, label, items = _unpack(batch, kind, count)
        x = x.to(device)
        pooled = encoder(x) if kind == "video" else series_representations(encoder, x.float(), revin=revin)
        b = pooled.shape[0]
        writer.add(pooled, torch.stack([items, _labels(label, b)], dim=1))
        count += b
    return count
