"""Import a class named in a file (``config.json``, ``source.json``, a fit's ``config.yaml``) only when it is ours.

A file from someone else must not make vtrep import arbitrary code: importing a module runs it.
The check is on the dotted name, before any import, so a refused name never reaches ``importlib``.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

VTREP_PACKAGES = ("vtrep", "datamodules")
# the lightning/torch classes a shipped fit config names (loggers, callbacks, strategies, optimisers)
LIBRARY_PACKAGES = ("lightning.pytorch", "torch.optim", "torch.nn")
_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")


def check_class_path(class_path: Any, allowed: tuple[str, ...] = VTREP_PACKAGES, where: str = "a file") -> str:
    """``class_path`` unchanged when it names a class under one of ``allowed``; ``ValueError`` otherwise."""
    if not isinstance(class_path, str) or not _DOTTED.match(class_path):
        raise ValueError(f"{where} names class {class_path!r}, which is not a dotted class path")
    if not any(class_path.startswith(package + ".") for package in allowed):
        raise ValueError(f"refusing to import {class_path!r} named in {where}: only classes under "
                         f"{', '.join(allowed)} can be loaded from a file")
    return class_path


def import_class(class_path: Any, allowed: tuple[str, ...] = VTREP_PACKAGES, where: str = "a file") -> type:
    """The class ``class_path`` names, after :func:`check_class_path` has allowed it."""
    module_name, _, name = check_class_path(class_path, allowed, where).rpartition(".")
    cls = getattr(importlib.import_module(module_name), name, None)
    if not isinstance(cls, type):
        raise ValueError(f"{where} names {class_path!r}, which is not a class")
    return cls
