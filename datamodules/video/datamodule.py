"""Lightning data module for labelled video clips from a class-per-folder tree or list files."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

import lightning as L
from torch.utils.data import DataLoader

from datamodules.common.data_root import require_data_path, resolve_data_path
from datamodules.common.epoch_shuffle import rank_and_world, shuffled_loader_kwargs
from datamodules.common.loader_args import check_loader_args
from datamodules.common.splits import stratified_split
from datamodules.faults.loader import SkippingLoader
from datamodules.faults.time_limit import check_timeout
from datamodules.faults.tracker import SkipContext, SkipTracker
from datamodules.video.csv_index import read_video_csv
from datamodules.video.dataset import (
    RepeatMode,
    VideoClipDataset,
    VideoViewsDataset,
    check_repeats,
    collate_repeats,
)
from datamodules.video.decoding import BACKENDS, Backend
from datamodules.video.frame_cache import DecodedFrameCache
from datamodules.video.folder import list_video_folder
from datamodules.video.resized_copy import check_short_side, resized_copy
from datamodules.video.sampling import check_short_clips, check_views
from datamodules.video.transforms import IMAGENET_MEAN, IMAGENET_STD, ClipTransform
from vtrep.checks import non_negative_int

Samples = list[tuple[str, int]]


class VideoDataModule(L.LightningDataModule):
    """Video clips ``(B, C, T, H, W)`` with integer labels ``(B,)``.

    Sources (exactly one of ``root`` / ``train_csv``):

    * ``root``: folder-per-class videos. If ``root/train`` and ``root/val`` exist they are the
      splits; otherwise ``root`` is split per class with ``val_fraction`` and ``split_seed``.
    * ``train_csv`` (+ optional ``val_csv``): list files, see :func:`read_video_csv`; without
      ``val_csv`` the train list is split as above. Class names are the label numbers.

    Training clips use a random offset and random crop/flip; validation, test and
    :meth:`feature_dataloader` clips use the centre offset and resize + centre crop.

    Bad videos: the train and validation loaders skip a video that neither decoder can read
    (within ``decode_timeout_s``), that has no video stream, or (``short_clips="skip"``) that is
    too short for a clip; each skipped file is warned about once, the skips are counted per split
    and epoch and written to ``skipped_videos.json`` / ``.txt`` in the run's log folder (see
    :mod:`datamodules.faults.tracker`), and the run stops with :class:`TooManySkippedVideos` when more
    than ``max_skip_fraction`` of a split fails. :meth:`feature_dataloader` never drops an item
    (features are matched to items by position): it pads short clips and raises on a bad file.

    Args:
        root: folder-per-class video tree.
        train_csv: list file of training videos.
        val_csv: list file of validation videos (with ``train_csv`` only).
        num_frames: frames per clip ``T``.
        sampling_rate: spacing between sampled frames.
        img_size: output height and width.
        batch_size: videos per batch ``B`` (clips too, unless ``repeats`` > 1).
        num_workers: DataLoader worker processes (0 decodes in the main process).
        val_fraction: per-class fraction held out when no explicit validation split exists.
        split_seed: seed of that split.
        min_scale: smallest random-crop area fraction (training).
        hflip: random horizontal flips (training).
        backend: video decoder, ``"auto"`` tries torchcodec (when it loads), decord, then PyAV.
        mean: per-channel normalisation mean.
        std: per-channel normalisation standard deviation.
        short_clips: videos with fewer than ``(num_frames - 1) * sampling_rate + 1`` frames:
            ``"skip"`` them (reported like bad files) or ``"pad"`` the clip by repeating the last frame.
        max_skip_fraction: largest fraction of a split's videos that may be skipped per epoch, in [0, 1].
        decode_timeout_s: wall-clock limit per decoder attempt on one file (``None``: none).
        cache_decoded_mb: decode each train / val video once and keep its frames in memory, up to this
            many MiB per process, shared by all splits and loaders of the module (each loader worker has its
            own copy; persistent workers keep it across epochs). For small datasets whose decoding costs more than the step, e.g. the generated
            quickstart clips; 0 (default) decodes every visit. See :mod:`datamodules.video.frame_cache`.
        repeats: repeated sampling of training clips: each video is decoded once per visit and gives R clips,
            so a training batch of ``batch_size`` videos holds ``batch_size · R`` clips (a video's clips
            adjacent, with its label); the epoch still visits each video once. The learning-rate scaling of
            the tasks counts videos (``batch_size``), not clips, as MAE-ST and VideoMAE V2 do. Validation and
            feature loaders draw one clip. See :class:`~datamodules.video.dataset.VideoClipDataset`.
        repeat_mode: ``"independent"`` (MAE-ST's ``repeat_aug``: own temporal start, crop and flip per clip)
            or ``"shared_frames"`` (VideoMAE V2's ``num_sample``: the same frames, crop and flip redrawn).
        short_side: decode from a copy of ``root`` resized to this (even) short side, made once in the cache
            folder when the index is first built (see :func:`~datamodules.video.resized_copy.resized_copy`);
            decoding cost scales with the source's pixels, so a copy at a few times ``img_size`` decodes much
            faster. ``train_samples`` / ``val_samples`` and skip reports then name the copy's files (same
            relative paths as under ``root``). ``None`` (default) decodes ``root`` itself. Only with ``root``.
        cache_dir: folder for the resized copies; default ``$VTREP_CACHE`` or ``~/.cache/vtrep``.
    """

    def __init__(
        self,
        root: Optional[str] = None,
        train_csv: Optional[str] = None,
        val_csv: Optional[str] = None,
        num_frames: int = 16,
        sampling_rate: int = 4,
        img_size: int = 224,
        batch_size: int = 8,
        num_workers: int = 2,
        val_fraction: float = 0.2,
        split_seed: int = 0,
        min_scale: float = 0.5,
        hflip: bool = True,
        backend: Backend = "auto",
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        short_clips: Literal["skip", "pad"] = "skip",
        max_skip_fraction: float = 0.1,
        decode_timeout_s: Optional[float] = 60.0,
        cache_decoded_mb: int = 0,
        repeats: int = 1,
        repeat_mode: RepeatMode = "independent",
        short_side: Optional[int] = None,
        cache_dir: Optional[str] = None,
    ) -> None:
        super().__init__()
        if type(self).__init__ is VideoDataModule.__init__:
            # A subclass with its own signature saves its own arguments (they differ from these).
            self.save_hyperparameters()
        _check_sources(root, train_csv, val_csv, short_side)
        _check_clip_args(num_frames, sampling_rate, img_size, val_fraction, split_seed, backend)
        check_loader_args(batch_size, num_workers)
        check_short_clips(short_clips)
        check_timeout(decode_timeout_s)
        non_negative_int("cache_decoded_mb", cache_decoded_mb)
        check_repeats(repeats, repeat_mode)
        # Private names: SyntheticVideoDataModule has a public cache_dir of its own.
        self._short_side, self._resize_cache_dir = short_side, cache_dir
        self.repeats, self.repeat_mode = repeats, repeat_mode
        self.short_clips, self.decode_timeout_s = short_clips, decode_timeout_s
        self.cache_decoded_mb, self._decoded_cache = cache_decoded_mb, None
        # One tracker for all loaders: a file is warned about once per run, whichever split holds it.
        self.skip_tracker = SkipTracker(max_skip_fraction, self._skip_context)
        self._report_dir: Optional[Path] = None
        # relative paths resolve against $VTREP_DATA (else the current directory); checked when read
        self._given_paths = {"root": root, "train_csv": train_csv, "val_csv": val_csv}
        self.root, self.train_csv, self.val_csv = map(resolve_data_path, (root, train_csv, val_csv))
        self.num_frames, self.sampling_rate, self.num_workers = num_frames, sampling_rate, num_workers
        self.val_fraction, self.split_seed, self.backend = val_fraction, split_seed, backend
        self._batch_size = batch_size
        # Built once so bad parameters fail here rather than in a worker.
        self.train_transform = ClipTransform(img_size, train=True, min_scale=min_scale, hflip=hflip,
                                             mean=mean, std=std)
        self.eval_transform = ClipTransform(img_size, train=False, mean=mean, std=std)
        self._index: Optional[tuple[Samples, Samples, list[str]]] = None
        self.train_set: Optional[VideoClipDataset] = None
        self.val_set: Optional[VideoClipDataset] = None
        if self._index_at_construction():
            self._ensure_index()

    def _index_at_construction(self) -> bool:
        """Whether the sources exist when the module is built (subclasses that create data say no)."""
        return True

    @property
    def batch_size(self) -> int:
        return self._batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        # Settable so Lightning's batch-size tuner can scale it.
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"batch_size must be a positive integer, got {value!r}")
        self._batch_size = value

    @property
    def class_names(self) -> list[str]:
        return list(self._ensure_index()[2])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def train_samples(self) -> Samples:
        return list(self._ensure_index()[0])

    @property
    def val_samples(self) -> Samples:
        return list(self._ensure_index()[1])

    def _ensure_index(self) -> tuple[Samples, Samples, list[str]]:
        if self._index is None:
            self._index = self._build_index()
        return self._index

    def _build_index(self) -> tuple[Samples, Samples, list[str]]:
        for name, given in self._given_paths.items():
            if given is not None:
                require_data_path(given, name)
        if self.root is not None:
            index = _index_folder(self.root, self.val_fraction, self.split_seed)
            if self._short_side is None:
                return index
            # Listed first so a malformed tree is reported under the user's root, not the copy.
            copy = resized_copy(self.root, self._short_side, self._resize_cache_dir)
            return _index_folder(str(copy), self.val_fraction, self.split_seed)
        train = read_video_csv(self.train_csv)
        if self.val_csv is not None:
            val = read_video_csv(self.val_csv)
        else:
            train, val = stratified_split(train, self.val_fraction, self.split_seed)
        num_classes = max(label for _, label in train + val) + 1
        return train, val, [str(label) for label in range(num_classes)]

    def _dataset(self, samples: Samples, train: bool, skip: bool = True) -> VideoClipDataset:
        return VideoClipDataset(samples, self.num_frames, self.sampling_rate,
                                self.train_transform if train else self.eval_transform,
                                mode="random" if train else "center", backend=self.backend,
                                short_clips=self.short_clips if skip else "pad",
                                decode_timeout_s=self.decode_timeout_s, skip_bad_videos=skip,
                                frame_cache=self._frame_cache(), repeats=self.repeats if train else 1,
                                repeat_mode=self.repeat_mode)

    def _frame_cache(self) -> Optional[DecodedFrameCache]:
        # One cache for every split and loader of this module: a probe that extracts features for the
        # pretrained and the random-init encoder decodes each video once, not twice.
        if self.cache_decoded_mb and self._decoded_cache is None:
            self._decoded_cache = DecodedFrameCache(self.cache_decoded_mb << 20)
        return self._decoded_cache

    def setup(self, stage: Optional[str] = None) -> None:
        train, val, _ = self._ensure_index()
        if self.train_set is None:
            self.train_set = self._dataset(train, train=True)
            self.val_set = self._dataset(val, train=False)
        if self.trainer is not None:
            # Found here, where every DDP rank runs the same code: the log folder may need a collective.
            from vtrep.io.run_dir import run_dir

            self._report_dir = run_dir(self.trainer)

    def _skip_context(self) -> SkipContext:
        rank, world = rank_and_world()
        trainer = self.trainer
        if trainer is None:
            return SkipContext(rank=rank, world_size=world)
        stage = "sanity_check" if trainer.sanity_checking else getattr(trainer.state.stage, "value", None)
        return SkipContext(trainer.current_epoch, stage, self._report_dir, rank, world)

    def skip_report(self) -> list[dict[str, Any]]:
        """Every pass (split, epoch) that skipped videos, as in ``skipped_videos.json``."""
        return self.skip_tracker.report()

    def _loader_kwargs(self, dataset: VideoClipDataset, batch_size: int, shuffle: bool,
                       persistent: bool) -> dict[str, Any]:
        order = shuffled_loader_kwargs(dataset) if shuffle else {}
        # A backstop for a worker stuck where decode_timeout_s cannot reach: every item of a batch
        # may use its full limit with both decoders, plus a minute for the rest of the batch.
        timeout = (2 * batch_size * self.decode_timeout_s + 60) if self.decode_timeout_s and self.num_workers else 0
        return dict(batch_size=batch_size, num_workers=self.num_workers, timeout=timeout,
                    drop_last=shuffle and len(dataset) > batch_size,
                    persistent_workers=persistent and self.num_workers > 0, **order)

    def _loader(self, dataset: VideoClipDataset, batch_size: int, shuffle: bool, split: str) -> DataLoader:
        collate = collate_repeats if dataset.repeats > 1 else None
        return SkippingLoader(dataset, tracker=self.skip_tracker, split=split,
                              decode_timeout_s=self.decode_timeout_s, collate_fn=collate,
                              **self._loader_kwargs(dataset, batch_size, shuffle, persistent=True))

    def _require_setup(self) -> None:
        if self.train_set is None:
            self.setup()

    def train_dataloader(self) -> DataLoader:
        """Shuffled clips; drops the last partial batch when there is more than one batch."""
        self._require_setup()
        return self._loader(self.train_set, self.batch_size, shuffle=True, split="train")

    def val_dataloader(self) -> DataLoader:
        self._require_setup()
        return self._loader(self.val_set, self.batch_size, shuffle=False, split="val")

    def test_dataloader(self) -> DataLoader:
        """The validation split: these sources define no separate test split."""
        return self.val_dataloader()

    def feature_dataloader(self, split: Literal["train", "val"], batch_size: Optional[int] = None,
                           clips: int = 1, crops: int = 1) -> DataLoader:
        """Deterministic clips (centre offset, eval transform, no shuffle) for feature extraction.

        Both splits use the eval pipeline so linear-probe features are not augmented. Item ``i`` is
        video ``i`` of the split, always: short videos are padded, a bad file raises naming it.

        ``clips`` × ``crops`` other than 1 × 1 gives VideoMAE's multi-view test items instead, batches
        ``(B, clips * crops, C, T, H, W)`` (see :class:`VideoViewsDataset`); the default batch then holds
        ``max(1, batch_size // (clips * crops))`` videos, about as many clips as a single-view batch.
        """
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size <= 0):
            raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
        check_views(clips, crops)
        train, val, _ = self._ensure_index()
        samples = train if split == "train" else val
        if clips * crops > 1:
            dataset = VideoViewsDataset(samples, self.num_frames, self.sampling_rate, self.eval_transform, clips,
                                        crops, self.backend, self.decode_timeout_s)
            batch_size = batch_size or max(1, self.batch_size // (clips * crops))
        else:
            dataset = self._dataset(samples, train=False, skip=False)
        # A one-pass loader: persistent workers would only outlive it.
        return DataLoader(dataset, **self._loader_kwargs(dataset, batch_size or self.batch_size, shuffle=False,
                                                         persistent=False))


def _check_clip_args(num_frames: int, sampling_rate: int, img_size: int, val_fraction: float, split_seed: int,
                     backend: str) -> None:
    for name, value in (("num_frames", num_frames), ("sampling_rate", sampling_rate), ("img_size", img_size)):
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    if not isinstance(split_seed, int) or split_seed < 0:
        raise ValueError(f"split_seed must be a non-negative integer, got {split_seed!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")


def _check_sources(root: Optional[str], train_csv: Optional[str], val_csv: Optional[str],
                   short_side: Optional[int] = None) -> None:
    if (root is None) == (train_csv is None):
        raise ValueError(
            f"give exactly one of root (folder-per-class videos) or train_csv (list file); "
            f"got root={root!r}, train_csv={train_csv!r}"
        )
    if val_csv is not None and train_csv is None:
        raise ValueError(f"val_csv={val_csv!r} needs train_csv; with root the split comes from folders")
    if short_side is not None:
        if root is None:
            raise ValueError(f"short_side={short_side!r} needs root: a resized copy is made of a folder tree, "
                             f"not of list files (train_csv={train_csv!r})")
        check_short_side(short_side)
    for name, path in (("train_csv", train_csv), ("val_csv", val_csv)):
        if path is not None and not Path(require_data_path(path, name)).is_file():
            raise FileNotFoundError(f"{name}={path!r} is not a file")


def _index_folder(root: str, val_fraction: float, split_seed: int) -> tuple[Samples, Samples, list[str]]:
    base = Path(root).expanduser()
    if not base.is_dir():
        raise FileNotFoundError(f"root={root!r} does not exist or is not a directory")
    if (base / "train").is_dir() and (base / "val").is_dir():
        train, classes = list_video_folder(str(base / "train"))
        val, val_classes = list_video_folder(str(base / "val"))
        if val_classes != classes:
            raise ValueError(f"root={root!r}: class folders of train/ {classes} and val/ {val_classes} differ")
        return train, val, classes
    samples, classes = list_video_folder(str(base))
    train, val = stratified_split(samples, val_fraction, split_seed)
    return train, val, classes
