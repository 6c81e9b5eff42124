"""The decoded-frame cache: the same frames as decoding every visit, each video decoded once, a bounded budget,
and a datamodule whose batches are identical with and without it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import datamodules.video.frame_cache as frame_cache
from video_faults import record_clip_reads
from datamodules.video.decoding import read_clip, write_video
from datamodules.video.frame_cache import DecodedFrameCache
from datamodules.video.sampling import TooShortError, clip_indices

NUM_FRAMES, SIZE = 12, 32


def _frames(seed: int) -> np.ndarray:
    """Frames whose red channel encodes the frame index: a wrong frame is visible."""
    frames = np.random.default_rng(seed).integers(0, 255, (NUM_FRAMES, SIZE, SIZE, 3), dtype=np.uint8)
    frames[..., 0] = (np.arange(NUM_FRAMES) * 20)[:, None, None]
    return frames


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    folder = tmp_path_factory.mktemp("cache")
    return [str(write_video(str(folder / f"v{i}.mp4"), _frames(i), fps=8, gop=4, crf=0, pix_fmt="yuv444p"))
            for i in range(3)]


@pytest.fixture
def decode_count(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Paths the cache decoded, in order (it calls read_clip only to decode)."""
    return record_clip_reads(monkeypatch, frame_cache)


@pytest.mark.parametrize("indices", [[0, 3, 7, 11], [11, 0, 5, 5], [9, 14, 30]])
def test_cached_frames_equal_decoded_frames(videos: list[str], indices: list[int]) -> None:
    cache = DecodedFrameCache(1 << 30)
    for _ in range(2):  # the first visit decodes, the second reads memory
        for path in videos:
            assert torch.equal(cache.read(path, lambda total: indices), read_clip(path, lambda total: indices))


def test_each_video_is_decoded_once(videos: list[str], decode_count: list[str]) -> None:
    cache = DecodedFrameCache(1 << 30)
    for visit in range(4):
        for path in videos:
            cache.read(path, lambda total: clip_indices(total, 4, 2, "random"))
    assert decode_count == videos and len(cache) == 3
    assert cache.used_bytes == 3 * NUM_FRAMES * SIZE * SIZE * 3


def test_the_budget_bounds_memory_and_the_rest_decodes_per_visit(videos: list[str], decode_count: list[str]) -> None:
    one_video = NUM_FRAMES * SIZE * SIZE * 3
    cache = DecodedFrameCache(one_video + 1)  # room for one decoded video, not two
    for _ in range(3):
        for path in videos:
            assert torch.equal(cache.read(path, lambda total: [1, 2]), read_clip(path, lambda total: [1, 2]))
    assert len(cache) == 1 and cache.used_bytes == one_video
    # video 0 decoded once and kept; the others decoded in full once (found too large), then per visit
    assert decode_count.count(videos[0]) == 1 and decode_count.count(videos[1]) == 3


def test_the_selection_sees_the_frame_count_and_its_errors_pass_through(videos: list[str]) -> None:
    cache = DecodedFrameCache(1 << 30)
    seen: list[int] = []
    cache.read(videos[0], lambda total: seen.append(total) or [0])
    assert seen == [NUM_FRAMES]
    with pytest.raises(TooShortError):
        cache.read(videos[0], lambda total: clip_indices(total, 16, 4, "center", short="skip"))


def test_bad_budget_is_refused() -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        DecodedFrameCache(-1)


def test_datamodule_batches_are_the_same_with_the_cache(tmp_path: Path) -> None:
    # PyAV: decord fails on the generated yuv444p clips, and under "auto" its failed attempt has already
    # drawn the random clip offset, so uncached reads draw twice; the cache's whole-video decode draws once.
    from datamodules.video.generated import SyntheticVideoDataModule

    def batches(cache_mb: int) -> list[torch.Tensor]:
        data = SyntheticVideoDataModule(cache_dir=str(tmp_path), num_per_class=4, num_frames=4, size=16, img_size=16,
                                        batch_size=4, cache_decoded_mb=cache_mb, min_scale=0.5,
                                        backend="pyav")
        data.prepare_data()
        data.setup("fit")
        torch.manual_seed(0)
        loader = data.train_dataloader()
        return [batch[0] for _ in range(2) for batch in loader]  # two epochs: the second reads the cache

    assert all(torch.equal(a, b) for a, b in zip(batches(0), batches(16), strict=True))
    with pytest.raises(ValueError, match="cache_decoded_mb"):
        SyntheticVideoDataModule(cache_dir=str(tmp_path), cache_decoded_mb=-1)


def test_datamodule_loaders_share_one_cache(tmp_path: Path, decode_count: list[str]) -> None:
    # A probe extracts features of the same split for two encoders: the second pass must not decode again.
    from datamodules.video.generated import SyntheticVideoDataModule

    data = SyntheticVideoDataModule(cache_dir=str(tmp_path), num_per_class=3, num_frames=4, size=16, img_size=16,
                                    batch_size=4, cache_decoded_mb=16, backend="pyav")
    data.prepare_data()
    data.setup("fit")
    first = [batch[0] for batch in data.feature_dataloader("val")]
    after_first = len(decode_count)
    second = [batch[0] for batch in data.feature_dataloader("val")]
    assert after_first > 0 and len(decode_count) == after_first
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
