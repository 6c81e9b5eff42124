"""Where vtrep keeps data it makes for itself (generated datasets, resized copies)."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """``$VTREP_CACHE`` if set, else ``~/.cache/vtrep``."""
    return Path(os.environ.get("VTREP_CACHE") or Path.home() / ".cache" / "vtrep").expanduser()
