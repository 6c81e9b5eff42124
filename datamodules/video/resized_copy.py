"""A copy of a folder-per-class video tree with every video re-encoded to a smaller short side.

Why: decoding cost scales with the source's pixels, not the training size. The fight clips (480 x 360)
took 35-50 ms per video on one core to train on 64-px clips; decoding a copy at a short side of a few
times the training size costs a fraction of that. This is the usual preparation (VideoMAE resizes
Kinetics to short side 320 before training at 224), made once, in the cache folder, never inside the
source tree.

The copy mirrors the source's relative paths: class folders, optional ``train/`` and ``val/``, file names.
Labels and splits are therefore the same, and a file named in a skip report (which names the copy's path)
is found at the same relative path under the source. Only what :func:`list_video_folder` can list is
mirrored (video extensions, non-hidden names); every class folder is mirrored, empty or not, so the copy
is listed, and fails to list, as the source would.

Per file:

* decodable, short side above ``short_side``: every decoded frame, in decoder (display) order, resized to
  ``short_side`` (the other side scaled to keep the aspect ratio, rounded to an even number) and written
  as H.264 yuv420p, crf 18, a keyframe every 8 frames (cheap seeks), at ``round(average fps)``. vtrep
  counts decoded frames, not timestamps, so one output frame per decoded frame keeps every clip's frames.
* short side at or below ``short_side``: copied as is (never upscaled; re-encoding would only lose quality).
* not decodable by PyAV: copied byte for byte, so the loader skips and reports it exactly as it would the
  original.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Optional, Union

import numpy as np

from datamodules.common.cache_dir import default_cache_dir
from datamodules.video.decoding import write_video
from datamodules.video.folder import _is_video
from vtrep.io.atomic_write import atomic_new_folder

# Bump when the encoding or the tree layout changes: old copies then get a new folder.
FORMAT_VERSION = 1
_ENCODE = {"codec": "libx264", "crf": 18, "gop": 8, "pix_fmt": "yuv420p"}
# Area averaging: every source pixel contributes, so downscaling does not alias (bilinear at 3-4x
# reduction samples a few pixels and shimmers on fine texture).
_INTERPOLATION = "AREA"
# For a stream that states no frame rate; only the container's timestamps depend on it.
_DEFAULT_FPS = 25
_MANIFEST = "manifest.json"
_SPLITS = ("train", "val")


def check_short_side(short_side: object) -> None:
    """Raise ValueError unless ``short_side`` is a positive even integer."""
    if isinstance(short_side, bool) or not isinstance(short_side, int) or short_side <= 0:
        raise ValueError(f"short_side must be a positive integer, got {short_side!r}")
    if short_side % 2:
        raise ValueError(f"short_side must be even (H.264 yuv420p needs even frame sizes), got {short_side}")


def target_size(width: int, height: int, short_side: int) -> Optional[tuple[int, int]]:
    """``(width, height)`` with the shorter side ``short_side`` and the longer one scaled and rounded to even.

    ``None`` when the frame's shorter side is already at or below ``short_side`` (the file is kept as is).
    """
    short, long = min(width, height), max(width, height)
    if short <= short_side:
        return None
    scaled = max(2, 2 * round(long * short_side / short / 2))
    return (short_side, scaled) if width < height else (scaled, short_side)


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


def _videos(folder: Path, prefix: str) -> list[str]:
    return [f"{prefix}/{p.name}" for p in sorted(folder.iterdir()) if _is_video(p)]


def mirrored_tree(root: Path) -> tuple[list[str], list[str]]:
    """Relative folders and video files (``/``-separated) of ``root/<class>/<video>`` and
    ``root/{train,val}/<class>/<video>``: what VideoDataModule can index, in either layout."""
    folders, files = [], []
    for top in _visible_dirs(root):
        folders.append(top.name)
        files += _videos(top, top.name)
        if top.name in _SPLITS:
            for sub in _visible_dirs(top):
                folders.append(f"{top.name}/{sub.name}")
                files += _videos(sub, f"{top.name}/{sub.name}")
    return folders, files


def _key(source: Path, short_side: int, folders: list[str], files: list[str]) -> dict:
    """What the copy depends on: a changed source file (size or mtime) or setting gives a new copy."""
    stats = {rel: [(st := (source / rel).stat()).st_size, st.st_mtime_ns] for rel in files}
    return {"format": "resized_copy", "version": FORMAT_VERSION, "source": str(source), "short_side": short_side,
            "interpolation": _INTERPOLATION, **_ENCODE, "folders": folders, "files": stats}


def _key_hash(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


def _read_key(folder: Path) -> Optional[dict]:
    try:
        return json.loads((folder / _MANIFEST).read_text())["key"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _decode_resized(path: Path, short_side: int) -> Union[str, tuple[np.ndarray, int]]:
    """Resized uint8 RGB frames ``(T, H', W', 3)`` and the integer fps, or ``"kept"`` for a small video.

    Raises whatever PyAV raises on a file it cannot decode.
    """
    import av
    from av.video.reformatter import VideoReformatter

    reformatter, frames, size = VideoReformatter(), [], None
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError("the file has no video stream")
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1  # one core per build; callers may run builds side by side
        rate = stream.average_rate or stream.guessed_rate
        fps = max(1, round(float(rate))) if rate else _DEFAULT_FPS
        for frame in container.decode(stream):
            if size is None and (size := target_size(frame.width, frame.height, short_side)) is None:
                return "kept"
            resized = reformatter.reformat(frame, width=size[0], height=size[1], format="rgb24",
                                           interpolation=_INTERPOLATION)
            frames.append(resized.to_ndarray())
    if not frames:
        raise ValueError("the video has no decodable frames")
    return np.stack(frames), fps


def _convert(source: Path, dest: Path, short_side: int) -> str:
    """Write ``dest`` from ``source``; returns what was done: ``resized``, ``kept`` or ``unreadable``."""
    try:
        result = _decode_resized(source, short_side)
    except Exception:  # noqa: BLE001 - any decoder failure: the loader meets the same bytes and reports them
        result = "unreadable"
    if isinstance(result, str):
        shutil.copyfile(source, dest)
        return result
    frames, fps = result
    write_video(str(dest), frames, fps=fps, **_ENCODE)
    return "resized"


def _build(source: Path, tmp: Path, short_side: int, key: dict) -> dict[str, int]:
    for rel in key["folders"]:
        (tmp / rel).mkdir()
    actions = {rel: _convert(source / rel, tmp / rel, short_side) for rel in key["files"]}
    counts = {name: sum(a == name for a in actions.values()) for name in ("resized", "kept", "unreadable")}
    manifest = {"key": key, "counts": counts, "actions": actions}
    (tmp / _MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return counts


def _target(source: Path, cache_dir: Optional[str], key: dict) -> Path:
    base = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    target = base.resolve() / f"resized-{key['short_side']}-{_key_hash(key)}"
    if source == target or source in target.parents:
        raise ValueError(f"the resized copy would be written inside the source root={str(source)!r} "
                         f"(cache folder {str(base)!r}); give a cache_dir outside it")
    return target


def resized_copy(root: str, short_side: int, cache_dir: Optional[str] = None) -> Path:
    """The folder of a copy of ``root`` with videos resized to ``short_side``, built on first call.

    The copy is ``<cache_dir or default_cache_dir()>/resized-<short_side>-<hash>``, the hash covering the
    absolute source path, ``short_side``, the format version and each mirrored file's relative path, size
    and mtime. It is built in a hidden temporary folder beside it and renamed into place with a
    ``manifest.json``; an existing copy with the same manifest key is reused, also when another process
    finished it first. ``root`` is only read. Prints one line to stderr when a copy is built.

    Raises:
        ValueError: ``short_side`` is not a positive even integer, or the copy would land inside ``root``.
        FileNotFoundError: ``root`` is not a folder.
        FileExistsError: the target folder exists but holds something else (its manifest differs).
    """
    check_short_side(short_side)
    source = Path(root).expanduser().resolve()
    if not source.is_dir():
        raise FileNotFoundError(f"video folder root={str(root)!r} does not exist or is not a directory")
    key = _key(source, short_side, *mirrored_tree(source))
    target = _target(source, cache_dir, key)
    if target.exists():
        if _read_key(target) != key:
            raise FileExistsError(f"{str(target)!r} exists but does not hold this resized copy (manifest differs)")
        return target
    start, counts = time.perf_counter(), {}
    try:
        atomic_new_folder(target, lambda tmp: counts.update(_build(source, tmp, short_side, key)))
    except OSError:
        # Another process may have finished the same copy first; that copy is as good.
        if _read_key(target) != key:
            raise
        return target
    print(f"resized copy of {source} at short side {short_side}: {len(key['files'])} videos ({counts['resized']} "
          f"resized, {counts['kept']} kept at their size, {counts['unreadable']} unreadable and copied as they are) "
          f"in {time.perf_counter() - start:.1f} s -> {target}", file=sys.stderr, flush=True)
    return target
