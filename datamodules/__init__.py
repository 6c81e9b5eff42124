"""Data loading for vtrep: video (decoding, clip sampling, transforms) and time series (UCR/UEA, CSV forecasting).

Clips are float32 ``(C, T, H, W)`` per sample and ``(B, C, T, H, W)`` per batch; series are
``(C, T)`` per sample. Public names
are imported on first access, so ``import datamodules`` stays cheap (no torch, Lightning or
decoder import until a name is used).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "VideoDecodeError": "datamodules.video.decoding",
    "count_frames": "datamodules.video.decoding",
    "read_clip": "datamodules.video.decoding",
    "read_frames": "datamodules.video.decoding",
    "write_video": "datamodules.video.decoding",
    "clip_indices": "datamodules.video.sampling",
    "stratified_split": "datamodules.common.splits",
    "ClipTransform": "datamodules.video.transforms",
    "IMAGENET_MEAN": "datamodules.video.transforms",
    "IMAGENET_STD": "datamodules.video.transforms",
    "VideoClipDataset": "datamodules.video.dataset",
    "VIDEO_EXTENSIONS": "datamodules.video.folder",
    "list_video_folder": "datamodules.video.folder",
    "read_video_csv": "datamodules.video.csv_index",
    "VideoDataModule": "datamodules.video.datamodule",
    "SkippedVideo": "datamodules.faults.skips",
    "SkippedVideoWarning": "datamodules.faults.tracker",
    "TooManySkippedVideos": "datamodules.faults.tracker",
    "SkippingLoader": "datamodules.faults.loader",
    "SyntheticVideoDataModule": "datamodules.video.generated",
    "generate_moving_sprites": "datamodules.video.generated",
    "SeriesClassificationDataModule": "datamodules.series.datamodule",
    "ForecastingDataModule": "datamodules.series.datamodule",
    "load_classification": "datamodules.series.ucr",
    "read_forecasting_csv": "datamodules.series.forecasting_csv",
    "FeatureDataModule": "datamodules.features.shards",
    "FeatureShards": "datamodules.features.shards",
    "FeatureShardWriter": "datamodules.features.shards",
    "planted_activations": "datamodules.features.planted",
    "PlantedDataModule": "datamodules.features.planted",
    "planted_hierarchy": "datamodules.features.planted_hierarchy",
    "PlantedHierarchyDataModule": "datamodules.features.planted_hierarchy",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'datamodules' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
