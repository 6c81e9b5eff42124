"""Write a file so that its final name never holds a partial one: into a temporary file beside it, then rename."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Callable


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """``write(tmp)`` to a hidden temporary file in ``path``'s folder, then rename it to ``path``.

    The temporary name keeps ``path``'s suffix (writers such as PyAV pick the format from it) and is
    unique per process and call; it is removed if ``write`` fails. Returns ``path``.
    """
    final = Path(path)
    tmp = final.with_name(f".{final.stem}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp{final.suffix}")
    try:
        write(tmp)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return final
