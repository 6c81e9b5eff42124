"""Saved artefacts: ``model.safetensors`` with ``config.json`` beside it; no pickle anywhere.

``save_pretrained(module, path)`` works for any vtrep module that keeps its constructor
arguments in ``module.config``; ``from_pretrained(path)`` rebuilds it and loads the weights
strictly, so a checkpoint of another architecture fails loudly instead of half-loading.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch import nn

from vtrep.io.atomic_write import atomic_write
from vtrep.io.class_paths import import_class
from vtrep.io.init_args import class_path
from vtrep.io.torch_files import load_matching_state

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
FORMAT_VERSION = 1


def save_pretrained(module: nn.Module, path: str | os.PathLike, extra: dict[str, Any] | None = None) -> Path:
    """Write ``path/model.safetensors`` and ``path/config.json``; each file is replaced atomically.

    ``module.config`` is the record of :mod:`vtrep.io.init_args`. Both files are prepared before the
    first write and the weights go first, so any failure leaves an existing artefact as it was.
    """
    if not hasattr(module, "config"):
        raise TypeError(f"{type(module).__name__} has no `config` dict of constructor arguments; cannot save it")
    meta = {"format_version": FORMAT_VERSION, "class_path": class_path(type(module)),
            "config": module.config, **(extra or {})}
    try:
        text = json.dumps(meta, indent=2)
    except TypeError as err:
        raise TypeError(f"the config of {type(module).__name__} is not JSON ({err}); cannot save it") from err
    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / WEIGHTS_NAME, lambda p: save_file(tensors, str(p)))
    atomic_write(out / CONFIG_NAME, lambda p: p.write_text(text))
    return out


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """The ``config.json`` of a saved artefact."""
    config_path = Path(path) / CONFIG_NAME
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} not found: a vtrep artefact is a folder with {CONFIG_NAME} and {WEIGHTS_NAME}")
    try:
        meta = json.loads(config_path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{config_path} is not valid JSON: {err}") from err
    if not isinstance(meta, dict) or "class_path" not in meta or "config" not in meta:
        raise ValueError(f"{config_path} lacks 'class_path' and 'config'; it was not written by vtrep.save_pretrained")
    return meta


def build_from_config(meta: dict[str, Any]) -> nn.Module:
    """Instantiate the class named in a config (only classes inside vtrep are allowed)."""
    cls = import_class(meta["class_path"], where="an artefact config.json")
    return cls(**meta["config"])


def from_pretrained(path: str | os.PathLike, random_init: bool = False, **overrides: Any) -> nn.Module:
    """Rebuild a saved module; ``random_init=True`` returns the same architecture with fresh weights."""
    meta = read_config(path)
    meta = {**meta, "config": {**meta["config"], **overrides}}
    module = build_from_config(meta)
    if random_init:
        return module
    weights_path = Path(path) / WEIGHTS_NAME
    if not weights_path.is_file():
        raise FileNotFoundError(f"{weights_path} not found")
    try:
        state = load_file(str(weights_path))
    except Exception as err:  # safetensors raises several types for truncated or foreign files
        raise ValueError(f"{weights_path} is not a readable safetensors file ({err})") from err

    load_matching_state(module, state, str(weights_path), meta["class_path"])  # names, then shapes, must match
    return module
