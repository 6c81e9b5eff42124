"""Decoding: decord and PyAV agree, clamping past the end, clear errors, atomic writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from datamodules.decoding import VideoDecodeError, count_frames, read_frames, write_video

FIGHT_SURV = Path("/work/shared/data/fight_surv")
NUM_FRAMES, HEIGHT, WIDTH = 20, 48, 64
# Measured: both decoders use FFmpeg's h264 decoder and swscale rgb24 conversion and return
# bit-identical frames, on the generated clip and on real fight_surv clips.
MAX_DECODER_DIFF = 0


def _content(num_frames: int = NUM_FRAMES) -> np.ndarray:
    """Frames whose brightness rises with t and with a bright block at column 2t: order is visible."""
    frames = np.zeros((num_frames, HEIGHT, WIDTH, 3), np.uint8)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    for t in range(num_frames):
        frames[t, ..., 0] = (xx * 2 + 8 * t) % 200
        frames[t, ..., 1] = yy * 3
        frames[t, ..., 2] = 10 * t
        frames[t, 10:22, 2 * t:2 * t + 8] = 255
    return frames


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(str(tmp_path_factory.mktemp("decode") / "clip.mp4"), _content(), fps=8, gop=4)


def test_write_video_is_atomic_and_readable(video: Path) -> None:
    assert [p.name for p in video.parent.iterdir()] == ["clip.mp4"]  # no temporary left behind
    frames = read_frames(str(video), range(NUM_FRAMES), backend="pyav")
    assert frames.shape == (NUM_FRAMES, HEIGHT, WIDTH, 3) and frames.dtype == torch.uint8
    error = (frames.float() - torch.from_numpy(_content()).float()).abs().mean()
    assert error < 4, f"decoded frames differ from the written ones by {error:.1f} on average"
    # Frames come back in display order: the blue channel encodes t.
    blue = frames[..., 2].float().mean(dim=(1, 2))
    assert torch.all(blue[1:] > blue[:-1])


@pytest.mark.parametrize("indices", [[0, 3, 7, 19], [19, 0, 5, 5, 12], list(range(NUM_FRAMES))])
def test_decord_and_pyav_agree(video: Path, indices: list[int]) -> None:
    by_decord = read_frames(str(video), indices, backend="decord")
    by_pyav = read_frames(str(video), indices, backend="pyav")
    assert by_decord.shape == by_pyav.shape == (len(indices), HEIGHT, WIDTH, 3)
    assert (by_decord.int() - by_pyav.int()).abs().max() <= MAX_DECODER_DIFF


def test_count_frames_agrees(video: Path) -> None:
    assert count_frames(str(video), "decord") == count_frames(str(video), "pyav") == NUM_FRAMES
    assert count_frames(str(video)) == NUM_FRAMES


@pytest.mark.parametrize("backend", ["decord", "pyav", "auto"])
def test_indices_past_the_end_read_the_last_frame(video: Path, backend: str) -> None:
    frames = read_frames(str(video), [NUM_FRAMES - 1, NUM_FRAMES, 1000], backend=backend)
    assert torch.equal(frames[1], frames[0]) and torch.equal(frames[2], frames[0])


def test_corrupt_file_names_path_and_both_errors(tmp_path: Path) -> None:
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(VideoDecodeError, match="corrupt.mp4") as info:
        read_frames(str(bad), [0])
    assert set(info.value.reasons) == {"decord", "pyav"}
    assert "decord:" in str(info.value) and "pyav:" in str(info.value)
    assert isinstance(info.value, RuntimeError)
    with pytest.raises(VideoDecodeError, match="corrupt.mp4"):
        count_frames(str(bad), backend="pyav")


def test_bad_arguments(video: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        read_frames(str(tmp_path / "missing.mp4"), [0])
    with pytest.raises(ValueError, match="backend"):
        read_frames(str(video), [0], backend="opencv")
    with pytest.raises(ValueError, match="non-negative"):
        read_frames(str(video), [-1])
    with pytest.raises(ValueError, match="even"):
        write_video(str(tmp_path / "odd.mp4"), np.zeros((2, 33, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        write_video(str(tmp_path / "float.mp4"), np.zeros((2, 32, 32, 3), np.float32))
    assert not any(tmp_path.iterdir())


def test_real_clip_decoders_agree() -> None:
    clips = sorted(FIGHT_SURV.glob("fight/*.mp4"))
    if not clips:
        pytest.skip(f"real dataset not found at {FIGHT_SURV}")
    indices = [0, 10, 25, 40, 500]  # 500 is past the end of every clip: clamped
    by_decord = read_frames(str(clips[0]), indices, backend="decord")
    by_pyav = read_frames(str(clips[0]), indices, backend="pyav")
    assert by_decord.shape == (5, 360, 480, 3)
    assert (by_decord.int() - by_pyav.int()).abs().max() <= MAX_DECODER_DIFF
