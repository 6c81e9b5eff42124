"""Read video list files in the UCF101 / HMDB51 / Kinetics conventions used by VideoMAE."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

_HEADER = ("path", "label")


def _split_line(line: str, delimiter: Optional[str]) -> list[str]:
    # Split on the last delimiter only, so paths may contain spaces (or commas in CSV mode).
    fields = line.rsplit(delimiter, 1) if delimiter else line.rsplit(None, 1)
    return [field.strip() for field in fields]


def _parse_label(text: str, where: str) -> int:
    try:
        label = int(text)
    except ValueError:
        raise ValueError(f"{where}: label {text!r} is not an integer") from None
    if label < 0:
        raise ValueError(f"{where}: label {label} is negative")
    return label


def read_video_csv(csv_path: str, root: Optional[str] = None) -> list[tuple[str, int]]:
    """Read ``(path, label)`` samples from a list file, one video per line.

    Accepted formats (decided from the first non-empty line): ``path label`` separated by
    whitespace, as VideoMAE's lists, or ``path,label`` with an optional ``path,label`` header.
    Blank lines and lines starting with ``#`` are skipped. Relative paths are resolved against
    ``root``, or against the list file's folder when ``root`` is None.

    Raises:
        FileNotFoundError: the list file, or a video it names, does not exist.
        ValueError: a line is malformed or its label is not a non-negative integer (the message
            gives ``file:line``), or the file lists no videos.
    """
    list_file = Path(csv_path).expanduser()
    if not list_file.is_file():
        raise FileNotFoundError(f"video list csv_path={str(csv_path)!r} does not exist")
    base = Path(root).expanduser() if root is not None else list_file.parent
    if not base.is_dir():
        raise FileNotFoundError(f"root={str(root)!r} for video list {str(csv_path)!r} is not a directory")
    samples: list[tuple[str, int]] = []
    delimiter: Optional[str] = None
    first = True
    for number, raw in enumerate(list_file.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{list_file}:{number}"
        if first:
            delimiter, first = ("," if "," in line else None), False
            if tuple(f.lower() for f in _split_line(line, delimiter)) == _HEADER:
                continue
        fields = _split_line(line, delimiter)
        if len(fields) != 2 or not fields[0] or not fields[1]:
            raise ValueError(f"{where}: expected 'path label' or 'path,label', got {raw!r}")
        video = base / fields[0]
        if not video.is_file():
            raise FileNotFoundError(f"{where}: video {str(video)!r} does not exist")
        samples.append((str(video), _parse_label(fields[1], where)))
    if not samples:
        raise ValueError(f"video list csv_path={str(csv_path)!r} lists no videos")
    return samples
