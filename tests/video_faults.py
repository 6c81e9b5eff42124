"""Write videos with the faults real datasets have, for fault-injection tests.

Each kind is a :class:`Fault`: a file name, how to write it, whether vtrep should use it or skip it,
and (when skipped) the ``kind`` the skip report gives. ``hangs`` is a valid video that
:func:`hanging_readers` makes every decoder stall on, since no real file reliably hangs a decoder.
:func:`record_clip_reads` counts the decodes a module makes.
"""

from __future__ import annotations

import fractions
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import av
import numpy as np

from datamodules.video.decoding import write_video

FRAMES, SIZE = 12, 32  # every good clip: 12 frames of 32 x 32


def clip(seed: int, frames: int = FRAMES, height: int = SIZE, width: int = SIZE) -> np.ndarray:
    """Random uint8 RGB frames ``(T, H, W, 3)``, different per ``seed``."""
    return np.random.default_rng(seed).integers(0, 256, (frames, height, width, 3), dtype=np.uint8)


def _encode(path: Path, frames: np.ndarray, codec: str = "libx264", pix_fmt: str = "yuv420p",
            container_format: Optional[str] = None, pts_steps: Optional[list[int]] = None,
            options: Optional[dict] = None) -> None:
    """Encode with PyAV directly, for what :func:`write_video` does not offer (containers, timestamps)."""
    with av.open(str(path), "w", format=container_format, options=options or {}) as container:
        stream = container.add_stream(codec, rate=8)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        stream.codec_context.gop_size = 4
        if pts_steps is not None:
            stream.codec_context.time_base = fractions.Fraction(1, 1000)
        pts = 0
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            if pts_steps is not None:
                frame.pts, frame.time_base = pts, fractions.Fraction(1, 1000)
                pts += pts_steps[i % len(pts_steps)]
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def write_zero_byte(path: Path) -> None:
    path.write_bytes(b"")


def write_truncated(path: Path) -> None:
    """A good mp4 cut to 40 %: the index (``moov``, written last) is gone."""
    write_video(str(path), clip(101))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 5])


def write_truncated_tail(path: Path) -> None:
    """A 40-frame mp4 with its index first (``faststart``) cut in half: the first frames still decode."""
    _encode(path, clip(102, frames=40), options={"movflags": "faststart"})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def write_avi_named_mp4(path: Path) -> None:
    """A valid MPEG-4 Part 2 video in an AVI container, under an ``.mp4`` name."""
    _encode(path, clip(103), codec="mpeg4", container_format="avi")


def write_text_named_mp4(path: Path) -> None:
    path.write_text("this is a text file with a video's name\n" * 20)


def write_random_bytes(path: Path) -> None:
    path.write_bytes(np.random.default_rng(104).integers(0, 256, 4096, dtype=np.uint8).tobytes())


def write_audio_only(path: Path) -> None:
    """One second of a 440 Hz tone as AAC in mp4: a container with no video stream."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        stream.layout = "mono"
        tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)).astype(np.float32)[None]
        frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
        frame.sample_rate = 16000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)


def write_too_short(path: Path) -> None:
    write_video(str(path), clip(105, frames=3))


def write_variable_frame_rate(path: Path) -> None:
    """Frame durations cycle through 40, 125, 250 and 60 ms."""
    _encode(path, clip(106), pts_steps=[40, 125, 250, 60])


def write_odd_resolution(path: Path) -> None:
    """49 x 67 pixels (odd both ways), stored 4:4:4 since 4:2:0 needs even sizes."""
    write_video(str(path), clip(107, height=49, width=67), pix_fmt="yuv444p")


def write_grayscale(path: Path) -> None:
    """Luma only (``pix_fmt=gray``): decoders must still return three equal channels."""
    _encode(path, clip(108), pix_fmt="gray")


def write_hangs(path: Path) -> None:
    write_video(str(path), clip(109))


@dataclass(frozen=True)
class Fault:
    name: str
    write: Callable[[Path], None]
    used: bool
    kind: Optional[str] = None  # the skip report's kind when skipped


FAULTS = (
    Fault("zero_byte.mp4", write_zero_byte, used=False, kind="empty_file"),
    Fault("truncated.mp4", write_truncated, used=False, kind="undecodable"),
    Fault("avi_named.mp4", write_avi_named_mp4, used=True),
    Fault("text_named.mp4", write_text_named_mp4, used=False, kind="undecodable"),
    Fault("random_bytes.mp4", write_random_bytes, used=False, kind="undecodable"),
    Fault("audio_only.mp4", write_audio_only, used=False, kind="no_video_stream"),
    Fault("too_short.mp4", write_too_short, used=False, kind="too_short"),
    Fault("variable_frame_rate.mp4", write_variable_frame_rate, used=True),
    Fault("odd_resolution.mp4", write_odd_resolution, used=True),
    Fault("grayscale.mp4", write_grayscale, used=True),
    Fault("hangs.mp4", write_hangs, used=False, kind="timeout"),
)


def hanging_readers(readers: dict, hang_s: float = 60.0, name: str = "hangs.mp4") -> dict:
    """``readers`` (decoder name -> read function) where reading a file called ``name`` sleeps ``hang_s``."""

    def stall(read: Callable) -> Callable:
        def wrapped(path: str, select: Callable):
            if Path(path).name == name:
                time.sleep(hang_s)
            return read(path, select)

        return wrapped

    return {backend: stall(read) for backend, read in readers.items()}


def record_clip_reads(monkeypatch, module) -> list[str]:
    """Wrap ``module.read_clip`` so every decode it makes appends its path to the returned list, in order."""
    from datamodules.video.decoding import read_clip

    calls: list[str] = []

    def counting(path, select, backend="auto", timeout_s=None):
        calls.append(path)
        return read_clip(path, select, backend, timeout_s=timeout_s)

    monkeypatch.setattr(module, "read_clip", counting)
    return calls
