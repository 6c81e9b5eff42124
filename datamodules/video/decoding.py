"""Read and write video files as uint8 RGB frames ``(T, H, W, 3)``.

Two decoders are supported: decord (random access, fast for sparse clips) and PyAV (sequential
decoding, more tolerant of odd files). ``backend="auto"`` tries decord and falls back to PyAV on
any decoder error, so one unreadable-by-decord file does not stop a run. Decoders are imported
and opened per call, never at import time: a handle opened in the main process and inherited by
forked DataLoader workers is not safe to use.

Each decoder attempt can be given a wall-clock limit (``timeout_s``, see
:mod:`datamodules.faults.time_limit`): a file that decodes forever fails like an unreadable one, and the next
decoder gets its own full limit.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Callable, Literal, Optional, Sequence, Union

import numpy as np
import torch

from datamodules.faults.errors import SelectionError, VideoDecodeError
from datamodules.faults.time_limit import time_limit
from vtrep.io.atomic_write import atomic_write

Backend = Literal["auto", "decord", "pyav"]
BACKENDS = ("auto", "decord", "pyav")
# Maps a video's frame count to the frame indices to read.
FrameSelector = Callable[[int], Sequence[int]]


def _clamp(indices: Sequence[int], total: int) -> list[int]:
    if total <= 0:
        raise ValueError("the video has no decodable frames")
    return [min(i, total - 1) for i in indices]


def _check_indices(indices: Sequence[int]) -> list[int]:
    out = [int(i) for i in indices]
    if not out:
        raise ValueError("indices must not be empty")
    if min(out) < 0:
        raise ValueError(f"indices must be non-negative, got {min(out)}")
    return out


def _decord_read(path: str, select: FrameSelector) -> np.ndarray:
    from decord import VideoReader, cpu

    reader = VideoReader(path, ctx=cpu(0), num_threads=1)
    indices = _clamp(_check_indices(select(len(reader))), len(reader))
    return reader.get_batch(indices).asnumpy()


_PYAV_LOCAL = threading.local()


def _pyav_rgb(frame) -> np.ndarray:
    """``frame`` as uint8 RGB ``(H, W, 3)`` through one reformatter per thread.

    ``frame.to_ndarray(format="rgb24")`` builds a new swscale context for every frame: 1.5 ms of set-up
    for a 32 x 32 frame, 10x its decode. A reused reformatter keeps its context (same pixels).
    """
    from av.video.reformatter import VideoReformatter

    reformatter = getattr(_PYAV_LOCAL, "reformatter", None)
    if reformatter is None:
        reformatter = _PYAV_LOCAL.reformatter = VideoReformatter()
    return reformatter.reformat(frame, format="rgb24").to_ndarray()


def _pyav_read(path: str, select: FrameSelector) -> np.ndarray:
    import av

    with av.open(path) as container:
        stream = _video_stream(container)
        total = stream.frames  # container metadata; 0 when unknown (e.g. some mkv/webm)
        if total > 0:
            wanted = _check_indices(select(total))
            needed, last_needed = set(wanted), max(wanted)
        else:
            wanted, needed, last_needed = None, None, None
        # Decoder output is in display order, so enumeration gives the frame index.
        frames: dict[int, np.ndarray] = {}
        last_index, last_frame = -1, None
        for last_index, frame in enumerate(container.decode(stream)):
            last_frame = frame
            if needed is None or last_index in needed:
                frames[last_index] = _pyav_rgb(frame)
            if last_needed is not None and last_index >= last_needed:
                break
        if last_frame is None:
            raise ValueError("the video has no decodable frames")
        if wanted is None:
            wanted = _check_indices(select(last_index + 1))
        # Metadata can overstate the length: clamp to the last frame actually decoded.
        if last_index not in frames:
            frames[last_index] = _pyav_rgb(last_frame)
        return np.stack([frames[i] for i in _clamp(wanted, last_index + 1)])


def _video_stream(container):
    """The first video stream; a clear error for files without one (e.g. audio only)."""
    if not container.streams.video:
        kinds = sorted({stream.type for stream in container.streams}) or ["none"]
        raise ValueError(f"the file has no video stream (streams: {', '.join(kinds)})")
    return container.streams.video[0]


_READERS = {"decord": _decord_read, "pyav": _pyav_read}


def _check_path_and_backend(path: str, backend: str) -> list[str]:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"video file {str(path)!r} does not exist")
    return ["decord", "pyav"] if backend == "auto" else [backend]


def read_clip(path: str, select: FrameSelector, backend: Backend = "auto",
              timeout_s: Optional[float] = None) -> torch.Tensor:
    """Read the frames that ``select(frame_count)`` names, opening the file once.

    Grayscale, odd-sized and variable-frame-rate videos come back as RGB at their own size
    (frame indices count decoded frames, whatever their timestamps).

    Args:
        timeout_s: wall-clock limit per decoder attempt (``None``: none), so a file takes at most
            ``timeout_s`` per backend tried.

    Returns:
        uint8 RGB frames ``(T, H, W, 3)``; indices past the end read the last frame.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        SelectionError: ``select`` rejected the video (no other decoder is tried).
        VideoDecodeError: every backend tried failed or timed out; the message names the file and each error.
    """
    path = str(path)
    reasons: dict[str, str] = {}
    for name in _check_path_and_backend(path, backend):
        try:
            with time_limit(timeout_s, f"decoding with {name}"):
                frames = _READERS[name](path, select)
            return torch.from_numpy(np.ascontiguousarray(frames))
        except SelectionError:
            raise
        except Exception as error:  # noqa: BLE001 - any decoder failure triggers the fallback
            reasons[name] = f"{type(error).__name__}: {error}".strip()
    raise VideoDecodeError(path, reasons)


def read_frames(path: str, indices: Sequence[int], backend: Backend = "auto") -> torch.Tensor:
    """Read frames ``indices`` (display order, 0-based) of ``path`` as uint8 RGB ``(T, H, W, 3)``.

    Indices beyond the end are clamped to the last frame. ``backend="auto"`` tries decord, then
    PyAV; if both fail a :class:`VideoDecodeError` names the file and both errors.
    """
    checked = _check_indices(indices)
    return read_clip(path, lambda _total: checked, backend)


def _pyav_count(path: str) -> int:
    import av

    with av.open(path) as container:
        stream = _video_stream(container)
        if stream.frames > 0:
            return stream.frames
        return sum(1 for _ in container.decode(stream))


def _decord_count(path: str) -> int:
    from decord import VideoReader, cpu

    return len(VideoReader(path, ctx=cpu(0), num_threads=1))


def count_frames(path: str, backend: Backend = "auto") -> int:
    """Number of video frames in ``path`` (same backend fallback and errors as :func:`read_frames`)."""
    path = str(path)
    counters = {"decord": _decord_count, "pyav": _pyav_count}
    reasons: dict[str, str] = {}
    for name in _check_path_and_backend(path, backend):
        try:
            return counters[name](path)
        except Exception as error:  # noqa: BLE001 - any decoder failure triggers the fallback
            reasons[name] = f"{type(error).__name__}: {error}".strip()
    raise VideoDecodeError(path, reasons)


def _as_uint8_frames(frames: Union[torch.Tensor, np.ndarray]) -> np.ndarray:
    array = frames.detach().cpu().numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[-1] != 3 or array.shape[0] == 0:
        raise ValueError(
            f"frames must be uint8 with shape (T, H, W, 3) and T > 0, got {array.dtype} {array.shape}"
        )
    return np.ascontiguousarray(array)


# Chroma subsampled by 2 in both directions: encoders need even frame sizes.
_HALF_CHROMA = ("yuv420p", "yuvj420p", "nv12", "nv21")


def write_video(
    path: str,
    frames: Union[torch.Tensor, np.ndarray],
    fps: int = 8,
    codec: str = "libx264",
    gop: int = 4,
    crf: int = 18,
    pix_fmt: str = "yuv420p",
) -> Path:
    """Encode uint8 RGB ``frames`` ``(T, H, W, 3)`` to ``path`` and return the path.

    ``pix_fmt`` ``yuv420p`` is what cameras and datasets use (height and width must be even);
    ``yuv444p`` with ``crf=0`` is lossless up to colour-conversion rounding (used for the generated
    default data) and allows odd sizes; ``gray`` stores luma only.

    A short keyframe interval ``gop`` keeps random access cheap for clip sampling. The file is
    written under a temporary name in the same folder and renamed, so ``path`` never holds a
    partial video.
    """
    import av

    array = _as_uint8_frames(frames)
    if pix_fmt in _HALF_CHROMA and (array.shape[1] % 2 or array.shape[2] % 2):
        raise ValueError(f"frames height and width must be even for pix_fmt={pix_fmt!r}, got {array.shape[1:3]}; "
                         "use pix_fmt='yuv444p' for odd sizes")
    for name, value in (("fps", fps), ("gop", gop)):
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    def encode(tmp: Path) -> None:
        with av.open(str(tmp), "w") as container:
            stream = container.add_stream(codec, rate=fps)
            stream.width, stream.height, stream.pix_fmt = array.shape[2], array.shape[1], pix_fmt
            stream.codec_context.gop_size = gop
            if codec in ("libx264", "libx265"):
                stream.options = {"crf": str(crf)}
            for image in array:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
            container.mux(stream.encode())

    return atomic_write(path, encode)
