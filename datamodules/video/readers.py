"""One reader and one frame counter per video decoder: torchcodec, decord and PyAV.

Each reader opens ``path``, calls ``select(frame_count)`` for the indices to read and returns uint8 RGB
``(T, H, W, 3)``, clamping indices past the end to the last frame. Decoders are imported and opened per
call, never at import time: a handle opened in the main process and inherited by forked DataLoader
workers is not safe to use. Each decoder runs on one thread: DataLoader workers are the parallelism, and
a decoder's own threads would compete with them for the same cores.

:mod:`datamodules.video.decoding` chooses among them (``backend``, the ``"auto"`` fallback, time limits).
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from typing import Callable, Optional, Sequence

import numpy as np

# Maps a video's frame count to the frame indices to read.
FrameSelector = Callable[[int], Sequence[int]]

_log = logging.getLogger(__name__)


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


# ---------------------------------------------------------------- torchcodec


_FFMPEG_MISSING = re.compile(r"(lib(?:av|sw|postproc)\w*\.so[.\d]*): cannot open shared object file")


def _describe_load_failure(error: BaseException) -> str:
    """A one-line reason torchcodec cannot be used: what is missing, or the error that matters."""
    if isinstance(error, ModuleNotFoundError) and (error.name or "").split(".")[0] == "torchcodec":
        return "torchcodec is not installed (pip install 'vtrep[torchcodec]')"
    text = f"{type(error).__name__}: {error}"
    # The loader tries each FFmpeg major version it supports and reports every attempt: those for versions
    # not installed name a missing libav*; any other error (a torch it was not built for, a missing CUDA
    # library) is the one that matters.
    errors = re.findall(r"^\w*Error: (.+)$", text, re.MULTILINE)
    other = [line for line in errors if "Could not load" not in line and not _FFMPEG_MISSING.search(line)]
    if other:
        hint = " (a torchcodec built for another torch version?)" if "undefined symbol" in other[0] else ""
        return f"torchcodec cannot be loaded: {other[0]}{hint}"
    missing = sorted(set(_FFMPEG_MISSING.findall(text)))
    if missing:
        return (f"torchcodec cannot load FFmpeg's shared libraries (not found: {', '.join(missing)}); install "
                "the system FFmpeg libraries, e.g. Debian's `apt-get install ffmpeg`")
    return f"torchcodec cannot be loaded: {text.strip().splitlines()[0]}"


@functools.lru_cache(maxsize=1)
def torchcodec_problem() -> Optional[str]:
    """Why torchcodec cannot decode video here, or ``None`` when it can; probed once per process."""
    try:
        import torchcodec
        from torchcodec.decoders import VideoDecoder

        # torchcodec >= 0.17 imports without FFmpeg (for its image decoders) and sets this to None;
        # opening a video decoder then raises the library loader's error, which names what is missing.
        if getattr(torchcodec, "ffmpeg_major_version", 0) is None:
            VideoDecoder(b"")
    except Exception as error:  # noqa: BLE001 - any failure to load means the backend is unusable
        return _describe_load_failure(error)
    return None


def _torchcodec_decoder(path: str, seek_mode: str):
    problem = torchcodec_problem()
    if problem is not None:
        raise ImportError(problem)
    from torchcodec.decoders import VideoDecoder

    return VideoDecoder(path, dimension_order="NHWC", num_ffmpeg_threads=1, device="cpu", seek_mode=seek_mode)


def _torchcodec_read(path: str, select: FrameSelector) -> np.ndarray:
    """uint8 RGB ``(T, H, W, 3)``: frames ``select(n)`` in one ``get_frames_at`` call, the frames PyAV decodes.

    ``seek_mode="exact"``: the decoder first scans the packets (demuxing only, no decoding) and so knows
    every frame's timestamp. ``"approximate"`` maps an index to a timestamp through the average frame rate:
    on a variable-frame-rate clip (tests/video_faults.py) it returned other frames than PyAV's in-order
    decode for most random reads, while "exact" returned the same frames on every test and fight_surv clip.

    Like the PyAV reader, ``select`` sees the container's frame count (the header's) and the indices are
    then clamped to the frames actually in the file (the scan's count), which is lower when the header
    overstates the length, e.g. for a file cut short.
    """
    decoder = _torchcodec_decoder(path, "exact")
    present = decoder.metadata.num_frames_from_content or 0
    listed = decoder.metadata.num_frames_from_header or present
    indices = _clamp(_check_indices(select(listed)), present)
    return decoder.get_frames_at(indices).data.numpy()


def _torchcodec_count(path: str) -> int:
    """The header's frame count (what PyAV counts), from an approximate-mode decoder, which skips the scan."""
    listed = _torchcodec_decoder(path, "approximate").metadata.num_frames_from_header
    if listed:
        return int(listed)
    return int(_torchcodec_decoder(path, "exact").metadata.num_frames_from_content or 0)


# ---------------------------------------------------------------- decord


def _decord_read(path: str, select: FrameSelector) -> np.ndarray:
    from decord import VideoReader, cpu

    reader = VideoReader(path, ctx=cpu(0), num_threads=1)
    indices = _clamp(_check_indices(select(len(reader))), len(reader))
    return reader.get_batch(indices).asnumpy()


def _decord_count(path: str) -> int:
    from decord import VideoReader, cpu

    return len(VideoReader(path, ctx=cpu(0), num_threads=1))


# ---------------------------------------------------------------- PyAV

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
        # PyAV's default (thread_count 0) starts a decoder thread per core in every loader worker
        stream.codec_context.thread_count = 1
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


def _pyav_count(path: str) -> int:
    import av

    with av.open(path) as container:
        stream = _video_stream(container)
        if stream.frames > 0:
            return stream.frames
        return sum(1 for _ in container.decode(stream))


# ---------------------------------------------------------------- the registry

# "auto" tries them in this order (torchcodec only where it loads): torchcodec reads a clip in one call and
# was as fast as PyAV and faster than decord on fight_surv clips; PyAV is the most tolerant of odd files.
READERS: dict[str, Callable[[str, FrameSelector], np.ndarray]] = {
    "torchcodec": _torchcodec_read, "decord": _decord_read, "pyav": _pyav_read,
}
COUNTERS: dict[str, Callable[[str], int]] = {
    "torchcodec": _torchcodec_count, "decord": _decord_count, "pyav": _pyav_count,
}


@functools.lru_cache(maxsize=None)
def _warn_once(message: str) -> None:
    _log.warning("video backend 'auto' leaves torchcodec out: %s", message)


def auto_order(names: Sequence[str]) -> list[str]:
    """``names`` in order, without torchcodec when it cannot load here (logged once per process and reason)."""
    problem = torchcodec_problem() if "torchcodec" in names else None
    if problem is not None:
        _warn_once(problem)
    return [name for name in names if not (name == "torchcodec" and problem is not None)]
