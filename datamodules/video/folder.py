"""List videos stored one folder per class: ``root/<class>/<video>``."""

from __future__ import annotations

from pathlib import Path

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v")


def _is_video(path: Path) -> bool:
    # Hidden files include write_video's temporaries left by an interrupted run.
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in VIDEO_EXTENSIONS


def list_video_folder(root: str) -> tuple[list[tuple[str, int]], list[str]]:
    """List ``root/<class>/<file>`` videos (extensions in ``VIDEO_EXTENSIONS``, case-insensitive).

    Classes are the sorted non-hidden sub-folder names and get labels ``0..C-1``; samples are
    sorted by class then file name, so the result is deterministic. Only files directly inside a
    class folder are listed.

    Returns:
        ``(samples, class_names)`` with samples as ``(path, label)`` pairs.

    Raises:
        FileNotFoundError: ``root`` does not exist or is not a folder.
        ValueError: ``root`` has no class folders, or a class folder holds no videos.
    """
    folder = Path(root).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"video folder root={str(root)!r} does not exist or is not a directory")
    class_dirs = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not class_dirs:
        raise ValueError(f"video folder root={str(root)!r} has no class sub-folders (expected root/<class>/<video>)")
    samples: list[tuple[str, int]] = []
    for label, class_dir in enumerate(class_dirs):
        videos = sorted(p for p in class_dir.iterdir() if _is_video(p))
        if not videos:
            raise ValueError(
                f"class folder {str(class_dir)!r} under root={str(root)!r} holds no videos "
                f"with extensions {VIDEO_EXTENSIONS}"
            )
        samples.extend((str(p), label) for p in videos)
    return samples, [d.name for d in class_dirs]
