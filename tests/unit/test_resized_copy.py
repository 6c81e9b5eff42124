"""The resized copy of a video tree: same files, labels and frames (order and count), smaller frames, the
source untouched, built once per source state, unreadable files passed through to the loader's skip report."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import datamodules.video.resized_copy as resized_module
from datamodules.video.datamodule import VideoDataModule
from datamodules.video.decoding import write_video
from datamodules.video.folder import list_video_folder
from datamodules.video.resized_copy import resized_copy, target_size

FRAMES, HEIGHT, WIDTH, SHORT = 6, 48, 64, 24
STEP = 40  # brightness step per frame: frame i has mean 20 + 40 i, so order is read from the pixels


def _frames(seed: int, frames: int = FRAMES) -> np.ndarray:
    """Smooth random texture ``(T, H, W, 3)`` whose overall brightness ramps by ``STEP`` per frame."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(-15, 15, (1, 3, HEIGHT // 8, WIDTH // 8))
    texture = F.interpolate(torch.from_numpy(coarse), size=(HEIGHT, WIDTH), mode="bilinear").numpy()[0]
    ramp = 20 + STEP * np.arange(frames)[:, None, None, None]
    return np.clip(ramp + texture.transpose(1, 2, 0)[None], 0, 255).astype(np.uint8)


def _write_tree(root: Path, layout: str = "flat") -> None:
    """Two classes of two yuv420p videos, flat (``root/<class>``) or split (``root/{train,val}/<class>``)."""
    prefixes = [""] if layout == "flat" else ["train/", "val/"]
    for p, prefix in enumerate(prefixes):
        for c, label in enumerate(("fight", "calm")):
            (root / prefix / label).mkdir(parents=True)
            for i in range(2):
                write_video(str(root / prefix / label / f"{label}{i}.mp4"), _frames(100 * p + 10 * c + i),
                            fps=8, gop=4, crf=10, pix_fmt="yuv420p")


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


@pytest.fixture
def source(tmp_path: Path) -> Path:
    root = tmp_path / "source"
    _write_tree(root)
    return root


def _read(path: Path) -> np.ndarray:
    """Every decoded frame ``(T, H, W, 3)``: the count is what the decoder gives, not the container's claim."""
    import av

    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def test_target_size_keeps_the_aspect_and_rounds_to_even() -> None:
    assert target_size(480, 360, 128) == (170, 128)  # 170.67 -> 170
    assert target_size(360, 480, 128) == (128, 170)
    assert target_size(64, 48, 24) == (32, 24)
    assert target_size(100, 100, 50) == (50, 50)
    assert target_size(64, 48, 48) is None and target_size(64, 48, 60) is None  # never upscaled


def test_copy_mirrors_files_labels_frames_and_resizes(source: Path, tmp_path: Path) -> None:
    copy = resized_copy(str(source), SHORT, cache_dir=str(tmp_path / "cache"))
    assert copy.parent == tmp_path / "cache" and copy.name.startswith(f"resized-{SHORT}-")
    src_samples, src_classes = list_video_folder(str(source))
    copy_samples, copy_classes = list_video_folder(str(copy))
    assert copy_classes == src_classes
    assert [(str(Path(p).relative_to(copy)), y) for p, y in copy_samples] == \
        [(str(Path(p).relative_to(source)), y) for p, y in src_samples]
    for (src_path, _), (copy_path, _) in zip(src_samples, copy_samples):
        original, resized = _read(Path(src_path)), _read(Path(copy_path))
        assert resized.shape == (FRAMES, SHORT, SHORT * WIDTH // HEIGHT, 3)
        # Order: the brightness ramp, frame by frame (a swap or a dropped frame moves a mean by >= 40).
        np.testing.assert_allclose(resized.mean(axis=(1, 2, 3)), original.mean(axis=(1, 2, 3)), atol=3)
        # Content: close to an area resize of the decoded source (crf 18 and chroma rounding allow a few levels).
        reference = F.interpolate(torch.from_numpy(original).permute(0, 3, 1, 2).float(), size=resized.shape[1:3],
                                  mode="area").permute(0, 2, 3, 1).numpy()
        assert np.abs(resized.astype(np.float64) - reference).mean() < 3.0


def test_split_layout_is_mirrored(tmp_path: Path) -> None:
    root = tmp_path / "split"
    _write_tree(root, layout="split")
    (root / "train" / "notes.txt").write_text("not listed")
    (root / "train" / "calm" / ".hidden.mp4").write_bytes(b"temporary")
    copy = resized_copy(str(root), SHORT, cache_dir=str(tmp_path / "cache"))
    videos = sorted(str(p.relative_to(copy)) for p in copy.rglob("*.mp4"))
    assert videos == sorted(str(p.relative_to(root)) for p in root.rglob("[!.]*.mp4"))
    assert len(videos) == 8 and not (copy / "train" / "notes.txt").exists()


def test_source_is_untouched(source: Path, tmp_path: Path) -> None:
    (source / "fight" / "broken.mp4").write_bytes(b"not a video")
    before = _snapshot(source)
    stats = {p: os.stat(p).st_mtime_ns for p in source.rglob("*")}
    resized_copy(str(source), SHORT, cache_dir=str(tmp_path / "cache"))
    assert _snapshot(source) == before
    assert {p: os.stat(p).st_mtime_ns for p in source.rglob("*")} == stats


def test_second_call_reuses_the_copy(source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = str(tmp_path / "cache")
    first = resized_copy(str(source), SHORT, cache_dir=cache)
    encodes: list[str] = []
    monkeypatch.setattr(resized_module, "write_video", lambda path, *a, **k: encodes.append(path))
    assert resized_copy(str(source), SHORT, cache_dir=cache) == first
    assert encodes == []
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [first.name]  # no temporary folder left


def test_a_changed_source_gets_a_new_copy(source: Path, tmp_path: Path) -> None:
    cache = str(tmp_path / "cache")
    first = resized_copy(str(source), SHORT, cache_dir=cache)
    write_video(str(source / "calm" / "calm0.mp4"), _frames(7, frames=FRAMES + 2), fps=8, gop=4, crf=10)
    second = resized_copy(str(source), SHORT, cache_dir=cache)
    assert second != first and first.exists()
    assert len(_read(second / "calm" / "calm0.mp4")) == FRAMES + 2
    assert resized_copy(str(source), SHORT + 2, cache_dir=cache) not in (first, second)


def test_small_and_unreadable_files_are_copied_verbatim(source: Path, tmp_path: Path) -> None:
    (source / "fight" / "broken.mp4").write_bytes(b"not a video")
    copy = resized_copy(str(source), HEIGHT, cache_dir=str(tmp_path / "cache"))  # already at the short side
    for path in source.rglob("*.mp4"):
        assert (copy / path.relative_to(source)).read_bytes() == path.read_bytes()


def test_module_decodes_the_copy_and_reports_its_unreadable_file(source: Path, tmp_path: Path) -> None:
    (source / "fight" / "broken.mp4").write_bytes(b"not a video")
    module = VideoDataModule(root=str(source), num_frames=4, sampling_rate=1, img_size=16, batch_size=5,
                             num_workers=0, val_fraction=0.0, backend="pyav", max_skip_fraction=0.5,
                             short_side=SHORT, cache_dir=str(tmp_path / "cache"))
    copy = next((tmp_path / "cache").iterdir())
    assert all(Path(path).parent.parent == copy for path, _ in module.train_samples)
    assert module.class_names == ["calm", "fight"]
    with pytest.warns(UserWarning, match="skipped"):
        (clips, labels), = list(module.train_dataloader())
    assert clips.shape == (4, 3, 4, 16, 16) and labels.shape == (4,)
    report, = module.skip_report()
    assert report["attempted"] == 5 and report["skipped"] == 1, report
    assert str(copy / "fight" / "broken.mp4") in str(report)


def test_module_batches_with_short_side(source: Path, tmp_path: Path) -> None:
    module = VideoDataModule(root=str(source), num_frames=4, sampling_rate=1, img_size=16, batch_size=2,
                             num_workers=0, val_fraction=0.5, backend="pyav", short_side=SHORT,
                             cache_dir=str(tmp_path / "cache"))
    clips, labels = next(iter(module.train_dataloader()))
    assert clips.shape == (2, 3, 4, 16, 16) and labels.dtype == torch.int64
    clips, _ = next(iter(module.val_dataloader()))
    assert clips.shape == (2, 3, 4, 16, 16)


def test_bad_arguments_are_named(source: Path, tmp_path: Path) -> None:
    csv = tmp_path / "train.csv"
    csv.write_text(f"{source / 'fight' / 'fight0.mp4'} 0\n")
    with pytest.raises(ValueError, match="short_side=24 needs root"):
        VideoDataModule(train_csv=str(csv), short_side=SHORT, cache_dir=str(tmp_path / "cache"))
    for bad in (0, -2, 2.0, "24", True):
        with pytest.raises(ValueError, match="short_side must be a positive integer"):
            VideoDataModule(root=str(source), short_side=bad, cache_dir=str(tmp_path / "cache"))
    with pytest.raises(ValueError, match="short_side must be even"):
        resized_copy(str(source), 25, cache_dir=str(tmp_path / "cache"))
    with pytest.raises(ValueError, match="inside the source root"):
        resized_copy(str(source), SHORT, cache_dir=str(source / "cache"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resized_copy(str(tmp_path / "missing"), SHORT, cache_dir=str(tmp_path / "cache"))
    assert not (source / "cache").exists() and not (tmp_path / "cache").exists()
