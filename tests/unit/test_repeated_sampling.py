"""Repeated sampling: R clips per decoded video (MAE-ST ``repeat_aug``, VideoMAE V2 ``num_sample``) — one decode
per visit, independent or shared temporal positions, B·R clips per batch, each video once per epoch (and once
per epoch across DDP ranks), the skip report counting videos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import datamodules.common.epoch_shuffle as epoch_shuffle
import datamodules.video.dataset as dataset_module
from video_faults import record_clip_reads
from datamodules.video.dataset import VideoClipDataset, collate_repeats
from datamodules.video.datamodule import VideoDataModule
from datamodules.video.decoding import write_video
from datamodules.video.transforms import ClipTransform

NUM_FRAMES, SIZE, CLIP, RATE = 40, 32, 4, 2


def _frames(seed: int) -> np.ndarray:
    """Frames whose red channel is 5 × the frame index: a clip's frames can be read back from its pixels."""
    frames = np.random.default_rng(seed).integers(0, 255, (NUM_FRAMES, SIZE, SIZE, 3), dtype=np.uint8)
    frames[..., 0] = (np.arange(NUM_FRAMES) * 5)[:, None, None]
    return frames


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two classes of three lossless videos each."""
    root = tmp_path_factory.mktemp("repeats")
    for label in ("a", "b"):
        (root / label).mkdir()
        for i in range(3):
            write_video(str(root / label / f"{label}{i}.mp4"), _frames(i + 10 * (label == "b")), fps=8, gop=4,
                        crf=0, pix_fmt="yuv444p")
    return root


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Paths the dataset decoded, in order."""
    return record_clip_reads(monkeypatch, dataset_module)


def frame_index_transform(frames: torch.Tensor) -> torch.Tensor:
    """The clip's frame indices ``(T,)`` from the red channel (lossless video: exact up to colour rounding)."""
    return (frames[:, SIZE // 2, SIZE // 2, 0].float() / 5).round()


def clip_dataset(folder: Path, repeats: int, mode: str, transform=frame_index_transform) -> VideoClipDataset:
    samples = [(str(path), 0) for path in sorted(folder.rglob("*.mp4"))]
    return VideoClipDataset(samples, CLIP, RATE, transform, mode="random", backend="pyav", repeats=repeats,
                            repeat_mode=mode)


def test_independent_repeats_have_their_own_start_and_one_decode(folder: Path, reads: list[str]) -> None:
    torch.manual_seed(0)
    data = clip_dataset(folder, repeats=4, mode="independent")
    items = [data[i] for i in range(len(data))]
    assert reads == [path for path, _ in data.samples]  # one decode per visit, for all four clips
    starts = []
    for clips, _ in items:
        assert clips.shape == (4, CLIP)
        for clip in clips:  # each clip is a clip: frames RATE apart
            assert torch.equal(clip - clip[0], torch.arange(CLIP) * RATE)
        starts.append(clips[:, 0])
    # 33 possible starts per clip: identical starts for all four clips of every video would not be independent
    assert sum(len(set(s.tolist())) > 1 for s in starts) >= len(starts) - 1


def test_shared_frame_repeats_share_frames_and_redraw_crops(folder: Path) -> None:
    torch.manual_seed(0)
    indices = clip_dataset(folder, repeats=3, mode="shared_frames")[0][0]
    assert all(torch.equal(clip, indices[0]) for clip in indices)  # one temporal position
    crops = ClipTransform(16, train=True, min_scale=0.2, hflip=True)
    clips, _ = clip_dataset(folder, repeats=3, mode="shared_frames", transform=crops)[0]
    assert clips.shape == (3, 3, CLIP, 16, 16)
    assert not torch.equal(clips[0], clips[1]) or not torch.equal(clips[1], clips[2])  # crops redrawn


def test_one_repeat_is_the_plain_dataset(folder: Path) -> None:
    torch.manual_seed(1)
    plain = [clip_dataset(folder, repeats=1, mode="independent")[i][0] for i in range(6)]
    torch.manual_seed(1)
    once = VideoClipDataset([(str(p), 0) for p in sorted(folder.rglob("*.mp4"))], CLIP, RATE,
                            frame_index_transform, backend="pyav")
    assert all(torch.equal(a, once[i][0]) for i, a in enumerate(plain))


def test_collate_flattens_videos_and_repeats_labels() -> None:
    items = [(torch.full((2, 3, 1, 1, 1), float(v)), v) for v in (7, 8, 9)]
    clips, labels = collate_repeats(items)
    assert clips.shape == (6, 3, 1, 1, 1) and labels.tolist() == [7, 7, 8, 8, 9, 9]
    assert clips[:, 0, 0, 0, 0].tolist() == [7, 7, 8, 8, 9, 9]


@pytest.mark.parametrize("repeats, repeat_mode, message", [
    (0, "independent", "repeats must be a positive integer"),
    (2.0, "independent", "repeats must be a positive integer"),
    (2, "tubes", "repeat_mode must be one of"),
])
def test_bad_repeat_settings_are_named(folder: Path, repeats, repeat_mode, message) -> None:
    with pytest.raises(ValueError, match=message):
        VideoDataModule(root=str(folder), repeats=repeats, repeat_mode=repeat_mode)


def datamodule(folder: Path, repeats: int) -> VideoDataModule:
    return VideoDataModule(root=str(folder), num_frames=CLIP, sampling_rate=RATE, img_size=16, batch_size=2,
                           num_workers=0, val_fraction=0.34, backend="pyav", repeats=repeats)


def test_a_training_batch_holds_b_times_r_clips_and_an_epoch_visits_each_video_once(folder: Path,
                                                                                    reads: list[str]) -> None:
    module = datamodule(folder, repeats=3)
    train = module.train_dataloader()
    batches = list(train)
    assert len(batches) == len(datamodule(folder, repeats=1).train_dataloader()) == 2  # 4 videos, batch 2
    for clips, labels in batches:
        assert clips.shape == (6, 3, CLIP, 16, 16)
        assert labels.view(2, 3).unique(dim=1).shape == (2, 1)  # a video's three clips carry its label
    assert sorted(reads) == sorted(path for path, _ in module.train_samples)
    assert [b[0].shape[0] for b in module.val_dataloader()] == [2]  # validation: one clip per video


def test_ddp_ranks_split_the_videos_and_each_is_decoded_once_per_epoch(folder: Path, reads: list[str],
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    for rank in (0, 1):
        monkeypatch.setattr(epoch_shuffle, "rank_and_world", lambda rank=rank: (rank, 2))
        module = datamodule(folder, repeats=2)
        module.batch_size = 1
        reads.clear()
        batches = list(module.train_dataloader())
        assert len(batches) == 2 and all(clips.shape[0] == 2 for clips, _ in batches)
        seen.append(list(reads))
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == sorted(path for path, _ in module.train_samples)


def test_skipped_videos_are_counted_as_videos(folder: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for path in sorted((folder / label).glob("*.mp4")):
            (root / label / path.name).write_bytes(path.read_bytes())
    (root / "a" / "broken.mp4").write_bytes(b"not a video")
    module = VideoDataModule(root=str(root), num_frames=CLIP, sampling_rate=RATE, img_size=16, batch_size=7,
                             num_workers=0, val_fraction=0.0, backend="pyav", repeats=2, max_skip_fraction=0.5)
    with pytest.warns(UserWarning, match="skipped"):
        (clips, labels), = list(module.train_dataloader())
    assert clips.shape[0] == 12  # six good videos × 2
    report, = module.skip_report()
    assert report["attempted"] == 7 and report["skipped"] == 1, report
