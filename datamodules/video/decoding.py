"""Read and write video files as uint8 RGB frames ``(T, H, W, 3)``.

Three decoders are supported (:mod:`datamodules.video.readers`): torchcodec (one call per clip; an
optional extra that needs the system's FFmpeg shared libraries), decord (random access) and PyAV
(sequential decoding, the most tolerant of odd files). ``backend="auto"`` tries torchcodec when it loads
here, then decord, then PyAV, moving on after any decoder error, so one file a decoder cannot read does
not stop a run. When torchcodec cannot load, "auto" leaves it out and logs why once per process; asking
for ``backend="torchcodec"`` then raises an ImportError that says what is missing. Decoders are imported
and opened per call, never at import time, each on one thread (DataLoader workers are the parallelism).

Each decoder attempt can be given a wall-clock limit (``timeout_s``, see
:mod:`datamodules.faults.time_limit`): a file that decodes forever fails like an unreadable one, and the next
decoder gets its own full limit.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, Optional, Sequence, Union

import numpy as np
import torch

from datamodules.faults.errors import SelectionError, VideoDecodeError
from datamodules.faults.time_limit import time_limit
from datamodules.video import readers
from datamodules.video.readers import (
    FrameSelector,
    _check_indices,
    _pyav_rgb,  # noqa: F401 - kept importable here (tools/bench/decode_cost.py)
)
from vtrep.io.atomic_write import atomic_write

Backend = Literal["auto", "torchcodec", "decord", "pyav"]
BACKENDS = ("auto", "torchcodec", "decord", "pyav")
# Tests replace this mapping (backend name -> reader) to inject hangs; "auto" tries its names in order.
_READERS = dict(readers.READERS)


def _check_path_and_backend(path: str, backend: str, names: Sequence[str]) -> list[str]:
    """The backends to try in order, of ``names`` (the readers' or counters' keys)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "torchcodec" and (problem := readers.torchcodec_problem()) is not None:
        # Not a VideoDecodeError: a missing library is a set-up error, not a file to skip.
        raise ImportError(f"backend='torchcodec' cannot be used: {problem}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"video file {str(path)!r} does not exist")
    return readers.auto_order(list(names)) if backend == "auto" else [backend]


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
        ImportError: ``backend="torchcodec"`` where torchcodec or its FFmpeg libraries cannot load.
        SelectionError: ``select`` rejected the video (no other decoder is tried).
        VideoDecodeError: every backend tried failed or timed out; the message names the file and each error.
    """
    path = str(path)
    reasons: dict[str, str] = {}
    for name in _check_path_and_backend(path, backend, _READERS):
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

    Indices beyond the end are clamped to the last frame. ``backend="auto"`` tries torchcodec (where it
    loads), decord, then PyAV; if all fail a :class:`VideoDecodeError` names the file and each error.
    """
    checked = _check_indices(indices)
    return read_clip(path, lambda _total: checked, backend)


def count_frames(path: str, backend: Backend = "auto") -> int:
    """Number of video frames in ``path`` (same backend fallback and errors as :func:`read_frames`)."""
    path = str(path)
    reasons: dict[str, str] = {}
    for name in _check_path_and_backend(path, backend, readers.COUNTERS):
        try:
            return readers.COUNTERS[name](path)
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
