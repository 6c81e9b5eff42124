"""Write a file so that its final name never holds a partial one: into a temporary file beside it, then rename."""

from __future__ import annotations

import os
import shutil
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


def atomic_new_folder(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """``write(tmp)`` into a hidden temporary folder beside ``path``, then rename it to ``path``, which must not exist.

    ``path`` thus appears complete or not at all; the temporary folder is removed if ``write`` fails.
    """
    final = Path(path)
    if final.exists():
        raise FileExistsError(f"{final} exists")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    tmp.mkdir()
    try:
        write(tmp)
        os.rename(tmp, final)  # fails, rather than merging, if another writer created final meanwhile
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return final
