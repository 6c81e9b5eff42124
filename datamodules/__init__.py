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
    "VideoDecodeError": "datamodules.decoding",
    "count_frames": "datamodules.decoding",
    "read_clip": "datamodules.decoding",
    "read_frames": "datamodules.decoding",
    "write_video": "datamodules.decoding",
    "clip_indices": "datamodules.sampling",
    "stratified_split": "datamodules.splits",
    "ClipTransform": "datamodules.transforms.video",
    "IMAGENET_MEAN": "datamodules.transforms.video",
    "IMAGENET_STD": "datamodules.transforms.video",
    "VideoClipDataset": "datamodules.video_dataset",
    "VIDEO_EXTENSIONS": "datamodules.video_folder",
    "list_video_folder": "datamodules.video_folder",
    "read_video_csv": "datamodules.video_csv",
    "VideoDataModule": "datamodules.video_datamodule",
    "SkippedVideo": "datamodules.skips",
    "SkippedVideoWarning": "datamodules.skip_tracker",
    "TooManySkippedVideos": "datamodules.skip_tracker",
    "SkippingLoader": "datamodules.skip_loader",
    "SyntheticVideoDataModule": "datamodules.synthetic_video",
    "generate_moving_sprites": "datamodules.synthetic_video",
    "SeriesClassificationDataModule": "datamodules.series_datamodule",
    "ForecastingDataModule": "datamodules.series_datamodule",
    "load_classification": "datamodules.ucr",
    "read_forecasting_csv": "datamodules.forecasting_csv",
    "FeatureDataModule": "datamodules.features",
    "FeatureShards": "datamodules.features",
    "FeatureShardWriter": "datamodules.features",
    "planted_activations": "datamodules.planted_dictionary",
    "PlantedDataModule": "datamodules.planted_dictionary",
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
