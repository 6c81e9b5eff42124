"""Where a relative data path in a config points: ``$VTREP_DATA`` when set, else the current directory.

Shipped configs name data relative to the repository (``../shared/data/UCRArchive_2018``), which only
works from the repository root. With ``VTREP_DATA=/path/to/repo`` the same configs work from any
directory, and a site can keep one data tree for every checkout. Absolute paths (and ``~``) are used
as given, so an explicit path always wins.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "VTREP_DATA"


def data_base() -> tuple[Path, str]:
    """The folder relative data paths start from, and a phrase saying where it came from."""
    value = os.environ.get(DATA_ENV, "")
    if value:
        return Path(value).expanduser(), f"${DATA_ENV}={value}"
    return Path.cwd(), f"the current directory ({DATA_ENV} is unset)"


def resolve_data_path(given: str | os.PathLike | None) -> str | None:
    """``given`` as an absolute path (``None`` stays ``None``: the datamodule's generated data).

    Pure (no file system access): datamodules resolve at construction, while a root may only be
    created later (the generated datasets write theirs in ``setup``).
    """
    if given is None:
        return None
    path = Path(given).expanduser()
    return str(path if path.is_absolute() else data_base()[0] / path)


def require_data_path(given: str | os.PathLike, name: str = "root") -> str:
    """:func:`resolve_data_path`, failing when the path does not exist; call it where the data is read.

    The error gives what the config said, what it resolved to and against what, since "no such
    file" alone hides whether the config or the working directory is wrong.
    """
    resolved = resolve_data_path(given)
    if not Path(resolved).exists():
        path = Path(given).expanduser()
        source = "an absolute path" if path.is_absolute() else data_base()[1]
        raise FileNotFoundError(
            f"{name}={str(given)!r} resolves to {resolved}, which does not exist (resolved against {source}). "
            f"Give an absolute path, or set {DATA_ENV} to the folder relative data paths start from.")
    return resolved
