"""Decoding: decord and PyAV agree, clamping past the end, clear errors, atomic writes; each kind of
faulty file decodes or fails as documented; decoding time limits."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from video_faults import FAULTS, hanging_readers, write_truncated_tail

import datamodules.video.decoding as decoding
from datamodules.faults.skips import SKIPPABLE_ERRORS, skipped_video
from datamodules.faults.time_limit import DecodeTimeout, time_limit
from datamodules.video import readers
from datamodules.video.decoding import (
    VideoDecodeError,
    count_frames,
    read_clip,
    read_frames,
    write_video,
)
from datamodules.video.sampling import TooShortError, clip_indices

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
    assert set(info.value.reasons) == set(readers.auto_order(list(decoding._READERS)))  # torchcodec where it loads
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


# ---------------------------------------------------------------- faulty files


def _clip_of_4(total: int) -> list[int]:
    return clip_indices(total, 4, 2, "center", short="skip")  # needs 7 frames


@pytest.mark.parametrize("fault", [f for f in FAULTS if f.name != "hangs.mp4"], ids=lambda f: f.name)
def test_each_fault_decodes_or_fails_with_its_kind(fault, tmp_path: Path) -> None:
    path = tmp_path / fault.name
    fault.write(path)
    if fault.used:
        frames = read_clip(str(path), _clip_of_4)
        height, width = (49, 67) if fault.name == "odd_resolution.mp4" else (32, 32)
        assert frames.shape == (4, height, width, 3) and frames.dtype == torch.uint8
        if fault.name == "grayscale.mp4":
            assert torch.equal(frames[..., 0], frames[..., 1]) and torch.equal(frames[..., 1], frames[..., 2])
        return
    with pytest.raises(SKIPPABLE_ERRORS) as info:
        read_clip(str(path), _clip_of_4)
    assert skipped_video(str(path), info.value).kind == fault.kind
    assert fault.name in str(info.value) or isinstance(info.value, TooShortError)


def test_audio_only_and_short_reasons_say_why(tmp_path: Path) -> None:
    for fault in FAULTS:
        if fault.name in ("audio_only.mp4", "too_short.mp4"):
            fault.write(tmp_path / fault.name)
    with pytest.raises(VideoDecodeError, match=r"pyav: ValueError: the file has no video stream \(streams: audio\)"):
        read_clip(str(tmp_path / "audio_only.mp4"), _clip_of_4)
    # Too short is a property of the video, not a decoder failure: no second decoder is tried.
    with pytest.raises(TooShortError, match=r"^the video has 3 frames, a clip of num_frames=4 at sampling_rate=2 "
                                            r"needs 7 \(short_clips='skip'\)$"):
        read_clip(str(tmp_path / "too_short.mp4"), _clip_of_4)


def test_short_rule_boundary() -> None:
    assert clip_indices(7, 4, 2, "center", short="skip") == [0, 2, 4, 6]
    with pytest.raises(TooShortError):
        clip_indices(6, 4, 2, "center", short="skip")
    assert clip_indices(6, 4, 2, "center", short="pad") == [0, 2, 4, 5]
    with pytest.raises(ValueError, match="short_clips must be one of"):
        clip_indices(6, 4, 2, "center", short="drop")


def test_truncated_file_falls_back_from_decord_to_pyav(tmp_path: Path) -> None:
    path = tmp_path / "tail.mp4"
    write_truncated_tail(path)  # 40 frames listed, the second half missing
    with pytest.raises(VideoDecodeError, match="decord"):
        read_frames(str(path), [0, 2, 4, 6], backend="decord")
    assert torch.equal(read_frames(str(path), [0, 2, 4, 6]), read_frames(str(path), [0, 2, 4, 6], backend="pyav"))
    with pytest.raises(VideoDecodeError) as info:  # frames past the cut: every decoder fails, each named
        read_frames(str(path), [36, 38])
    assert set(info.value.reasons) == set(readers.auto_order(list(decoding._READERS)))


def test_timeout_moves_on_to_the_other_decoder_then_fails(video: Path, monkeypatch) -> None:
    handler = signal.getsignal(signal.SIGALRM)
    slow = hanging_readers(decoding._READERS, hang_s=30, name=video.name)
    monkeypatch.setattr(decoding, "_READERS", {"decord": slow["decord"], "pyav": decoding._READERS["pyav"]})
    start = time.monotonic()
    frames = read_clip(str(video), _clip_of_4, timeout_s=0.2)
    assert frames.shape == (4, HEIGHT, WIDTH, 3) and time.monotonic() - start < 5
    monkeypatch.setattr(decoding, "_READERS", slow)
    with pytest.raises(VideoDecodeError) as info:
        read_clip(str(video), _clip_of_4, timeout_s=0.2)
    assert info.value.reasons == {name: f"DecodeTimeout: decoding with {name} took longer than decode_timeout_s=0.2 s"
                                  for name in readers.auto_order(list(slow))}
    assert skipped_video(str(video), info.value).kind == "timeout"
    assert time.monotonic() - start < 5
    assert signal.getsignal(signal.SIGALRM) is handler and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_time_limit_restores_an_outer_timer() -> None:
    fired = []
    previous = signal.signal(signal.SIGALRM, lambda *_: fired.append(1))
    try:
        signal.setitimer(signal.ITIMER_REAL, 5.0)
        with pytest.raises(DecodeTimeout, match=r"^decoding took longer than decode_timeout_s=0.05 s$"):
            with time_limit(0.05):
                time.sleep(1)
        left, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 3.0 < left <= 5.0 and not fired
        with time_limit(1.0):
            pass  # a block that finishes in time leaves the outer timer running
        assert signal.getitimer(signal.ITIMER_REAL)[0] > 3.0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_time_limit_off_the_main_thread_warns_and_runs_unlimited() -> None:
    outcome = []

    def work() -> None:
        with pytest.warns(RuntimeWarning, match="decode_timeout_s is not enforced off the main thread"):
            with time_limit(0.01):
                time.sleep(0.05)
        outcome.append("finished")

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(5)
    assert outcome == ["finished"]
    with pytest.raises(ValueError, match="decode_timeout_s must be a positive number of seconds or None, got 0"):
        with time_limit(0):
            pass


def test_write_video_odd_sizes_need_a_full_chroma_format(tmp_path: Path) -> None:
    frames = np.zeros((2, 33, 31, 3), np.uint8)
    with pytest.raises(ValueError, match=r"even for pix_fmt='yuv420p'.*yuv444p"):
        write_video(str(tmp_path / "odd.mp4"), frames)
    path = write_video(str(tmp_path / "odd.mp4"), frames, pix_fmt="yuv444p")
    assert read_frames(str(path), [0, 1]).shape == (2, 33, 31, 3)
