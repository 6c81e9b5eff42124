"""Thin LightningModules that wire components."""

from vtrep.tasks.base import PretrainTask
from vtrep.tasks.sae import SAETask
from vtrep.tasks.series_forecast import SeriesForecastTask
from vtrep.tasks.series_mae import SeriesMAETask
from vtrep.tasks.ts2vec import TS2VecTask
from vtrep.tasks.video_mae import VideoMAETask

__all__ = ["PretrainTask", "VideoMAETask", "SeriesMAETask", "SeriesForecastTask", "TS2VecTask", "SAETask"]
