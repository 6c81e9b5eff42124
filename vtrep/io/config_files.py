"""A ``vtrep fit`` config read as one plain dict, its piece files inlined as jsonargparse reads them.

Experiments compose pieces by path: a value that names a ``.yaml`` file (``masking: ../masking/x.yaml``,
relative to the file naming it) stands for that file's content, and a ``config: ../data/x.yaml`` entry
merges the piece's keys in at its level (the including file's own keys win). Reading a config this way
needs no import, so the class paths it names can be checked before anything is imported.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

MAX_DEPTH = 8  # pieces naming pieces; deeper is a cycle or a mistake


def _is_piece(value: Any) -> bool:
    return isinstance(value, str) and value.endswith((".yaml", ".yml"))


def _read(path: Path, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise ValueError(f"{path}: config pieces nest more than {MAX_DEPTH} deep (a piece that names itself?)")
    if not path.is_file():
        raise FileNotFoundError(f"config piece {str(path)!r} does not exist")
    return _inline(yaml.safe_load(path.read_text()), path.parent, depth)


def _inline(node: Any, base: Path, depth: int) -> Any:
    if _is_piece(node):
        return _read(base / node, depth + 1)
    if isinstance(node, list):
        return [_inline(item, base, depth) for item in node]
    if not isinstance(node, dict):
        return node
    merged: dict[str, Any] = {}
    if _is_piece(node.get("config")):
        piece = _read(base / node["config"], depth + 1)
        if not isinstance(piece, dict):
            raise ValueError(f"{base / node['config']}: a `config:` piece must be a mapping of settings")
        merged.update(piece)
    merged.update({key: _inline(value, base, depth) for key, value in node.items() if key != "config"})
    return merged


def read_fit_config(path: str | os.PathLike) -> dict[str, Any]:
    """The settings of config file ``path`` with every piece it names inlined."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config={str(path)!r} does not exist")
    settings = _read(path, 0)
    if not isinstance(settings, dict):
        raise ValueError(f"{path} is not a mapping of settings")
    return settings
