"""``vtrep extract``: token features of a frozen encoder over one split, as shards with ``source.json``."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Literal

import lightning as L
import torch

from datamodules.features.shards import FeatureShardWriter
from vtrep.checks import positive_int
from vtrep.eval.encoders import encoder_kind, load_encoder, random_copy
from vtrep.eval.extract import (
    POOLED_META,
    SERIES_META,
    VIDEO_META,
    extract_pooled,
    extract_series_tokens,
    extract_video_tokens,
)
from vtrep.eval.extract_skips import SkippingExtraction, skips_bad_videos
from vtrep.eval.feature_source import split_loader, write_source
from vtrep.eval.geometry import with_encoder_geometry

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def extract(encoder: str, data: L.LightningDataModule, output: str, split: Literal["train", "val", "test"] = "train",
            features: Literal["tokens", "pooled"] = "tokens", fit_config: str | None = None,
            batch_size: int | None = None, shard_rows: int = 1 << 18,
            dtype: Literal["float32", "float16", "bfloat16"] = "float32", device: str = "cpu",
            random_init: bool = False, seed: int = 0) -> Path:
    """Write every token (or one pooled row per item) of ``split`` with its metadata to a new folder ``output``.

    A video no decoder reads is skipped and reported as ``vtrep fit`` does (:mod:`vtrep.eval.extract_skips`):
    warned about, listed in ``source.json`` and ``skipped_videos.txt`` / ``.json`` in ``output``, its clip number
    left unused; more than the datamodule's ``max_skip_fraction`` of the split stops the extraction. A failed
    extraction leaves no ``output`` folder.

    Args:
        encoder: a saved encoder folder (``<log dir>/encoder`` of ``vtrep fit``) or a Lightning ``.ckpt``.
        data: the datamodule whose items to encode (video: ``clip, t, h, w, label`` per token;
            series: ``series, channel, patch, label``; see :mod:`vtrep.eval.extract`).
        output: a new folder (an existing feature folder is refused, never overwritten).
        split: which split's items, read in order without augmentation.
        features: every token with its place (for SAEs), or one pooled row per item (for probes).
        fit_config: the fit's ``config.yaml``, needed only when ``encoder`` is a checkpoint file.
        batch_size: items per encoder batch (default: the datamodule's).
        shard_rows: tokens per shard file.
        dtype: storage dtype of the features (half precision halves the disk).
        device: where the encoder runs.
        random_init: encode with the same architecture at random initialisation instead of the trained weights
            (``vtrep.eval.encoders.random_copy``): the control of ``vtrep concepts``. Recorded in ``source.json``
            with ``seed``, so the clips can be re-encoded by the same random encoder.
        seed: the random initialisation's seed (used only with ``random_init``).
    """
    if batch_size is not None:
        positive_int("batch_size", batch_size)
    positive_int("shard_rows", shard_rows)
    module, revin, origin = _encoder(encoder, fit_config, random_init, seed)
    kind = encoder_kind(module)
    if kind == "video":
        data = with_encoder_geometry(module, data)
    final = Path(output)
    if final.exists() and any(final.iterdir()):
        raise FileExistsError(f"{final} already holds features or other files; extract into a new folder")
    # written beside the output and renamed into place at the end: a failed or killed extraction leaves
    # no half-written feature folder under the name a later step would read
    staging = final.parent / f".{final.name}.partial-{os.getpid()}"
    try:
        count, writer, seconds, skipped = _write_features(module, revin, kind, data, staging, split, features,
                                                          encoder, batch_size, shard_rows, dtype, device, origin)
        if final.exists():
            final.rmdir()  # the empty folder a user may have made for it
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    rows = sum(shard["rows"] for shard in writer.shards)
    what = "pooled rows" if features == "pooled" else "tokens"
    print(f"wrote {rows} {what} of width {writer.width} from {count} {kind} items to {final} "
          f"({len(writer.shards)} shards, {seconds:.1f} s)")
    if skipped:
        print(f"skipped {len(skipped)} unreadable videos (no features; listed in {final / 'skipped_videos.txt'} "
              "and source.json)")
    return final


def _encoder(encoder: str, fit_config: str | None, random_init: bool, seed: int) -> tuple[torch.nn.Module, bool, dict]:
    """The encoder (its random copy with ``random_init``), its RevIN flag, and what ``source.json`` records of it."""
    module, revin = load_encoder(encoder, fit_config)
    if random_init:
        module = random_copy(module, seed)
    origin = {"fit_config": str(Path(fit_config).resolve()) if fit_config else None, "random_init": random_init,
              "seed": seed if random_init else None}
    return module, revin, origin


def _write_features(module, revin, kind, data, out: Path, split, features, encoder, batch_size, shard_rows, dtype,
                    device, origin: dict) -> tuple[int, FeatureShardWriter, float, list]:
    names = POOLED_META if features == "pooled" else VIDEO_META if kind == "video" else SERIES_META
    writer = FeatureShardWriter(out, names, shard_rows, DTYPES[dtype])
    loader = split_loader(data, split, batch_size)
    items = len(loader.dataset)
    if skips_bad_videos(data, loader):  # video files: a bad one is skipped and reported, as in fit
        loader = SkippingExtraction(loader, data.skip_tracker.max_skip_fraction, split)
    start = time.perf_counter()
    with torch.inference_mode():
        if features == "pooled":
            count = extract_pooled(module, loader, writer, kind, revin, device)
        elif kind == "video":
            count = extract_video_tokens(module, loader, writer, device)
        else:
            count = extract_series_tokens(module, loader, writer, revin, device)
    skipped = loader.skipped if isinstance(loader, SkippingExtraction) else []
    if count + len(skipped) != items:
        raise RuntimeError(f"encoded {count} and skipped {len(skipped)} items but the split has {items}; the loader "
                           "must not drop or repeat items")
    geometry = {} if kind == "video" else {"patch_length": getattr(module, "patch_length", None),
                                           "stride": getattr(module, "stride", None)}
    if isinstance(loader, SkippingExtraction):
        geometry["skipped"] = skipped  # items without features, with their files: SourceItems.skipped
        loader.write_report(out)
    write_source(out, kind, encoder, data, split, items=items, revin=revin, features=features, **origin, **geometry)
    writer.close()
    return count, writer, time.perf_counter() - start, skipped


def extract_cli(args: list[str] | None = None) -> Path:
    from vtrep.cli_messages import run_command

    return run_command(extract, args)
