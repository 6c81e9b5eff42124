"""Read weight files without running pickled code, and load them strictly with errors that name the file.

``.safetensors`` is read with ``safetensors``; ``.pth`` / ``.pt`` / ``.bin`` / ``.ckpt`` with
``torch.load(weights_only=True)`` (:func:`load_torch_checkpoint`). Every vtrep loader of torch files goes
through here, so the refusal of code-running pickles is in one place.
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from vtrep.errors import UsageError

PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
WRAPPER_KEYS = ("model", "module", "state_dict", "model_state")  # training-script wrappers, tried in order


def sniff_format(path: Path) -> str:
    """``"safetensors"``, ``"torch-zip"`` (``torch.save``), ``"pickle"`` (legacy ``torch.save``) or ``"unknown"``."""
    with path.open("rb") as handle:
        head = handle.read(16)
    if head[:4] == b"PK\x03\x04":
        return "torch-zip"
    # safetensors before pickle: its little-endian header length may start with the byte 0x80 (a 4992-byte header)
    if len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < path.stat().st_size:
        return "safetensors"  # 8-byte header length, then the JSON header
    if head[:1] == b"\x80":  # pickle protocol >= 2 opcode
        return "pickle"
    return "unknown"


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except Exception as err:  # safetensors raises several types for truncated or foreign files
        raise UsageError(f"{path} is not a readable safetensors file (truncated or corrupt?): {err}") from err


def _first_sentence(err: BaseException) -> str:
    """``Type: first sentence`` of an error, for messages that must stay one readable line."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    text = text.split(". ")[0].rstrip(".")
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def load_torch_checkpoint(path: str | os.PathLike) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, with errors that name the file and the problem.

    A file that would unpickle anything but tensors and plain containers (a class, a function — what a
    malicious ``__reduce__`` needs) is refused before any of it runs; a truncated or foreign file is
    reported as such. The original VideoMAE scripts save their argparse ``Namespace`` beside the
    weights; it is plain data and allowed.
    """
    path = Path(path)
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights only" not in str(err).lower():
            raise UsageError(f"{path} is not a readable torch checkpoint (truncated or corrupt?): "
                             f"{_first_sentence(err)}") from err
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        what = found.group(1) if found else "objects other than tensors and plain containers"
        raise UsageError(f"{path} refers to {what}, which is not a tensor or plain container; unpickling it could "
                         "run code, so vtrep reads checkpoints with torch.load(weights_only=True) and will not "
                         "unpickle them. If you trust the file, re-save its state dict (or convert it to "
                         "safetensors)") from err
    except Exception as err:  # torch raises RuntimeError, EOFError, KeyError ... for cut or foreign bytes
        raise UsageError(f"{path} is not a readable torch checkpoint (truncated or corrupt?): "
                         f"{_first_sentence(err)}") from err


def state_dict_mismatch(module: nn.Module, state: Mapping[str, torch.Tensor]) -> str:
    """What keeps ``state`` from loading strictly into ``module`` (empty when it fits).

    ``"missing keys [...], unexpected keys [...]"``, plus ``", shape mismatches [...]"`` with
    ``"key: checkpoint (a, b) vs model (c, d)"`` entries when there are any.
    """
    own = module.state_dict()
    missing = [key for key in own if key not in state]
    unexpected = [key for key in state if key not in own]
    mismatched = [f"{key}: checkpoint {tuple(value.shape)} vs model {tuple(own[key].shape)}"
                  for key, value in state.items() if key in own and tuple(value.shape) != tuple(own[key].shape)]
    if not (missing or unexpected or mismatched):
        return ""
    text = f"missing keys {missing}, unexpected keys {unexpected}"
    return text + (f", shape mismatches {mismatched}" if mismatched else "")


def load_matching_state(module: nn.Module, state: Mapping[str, torch.Tensor], source: str, target: str) -> None:
    """Load ``state`` strictly, or raise ``UsageError`` naming ``source`` (the file) and what does not match."""
    problem = state_dict_mismatch(module, state)
    if problem:
        raise UsageError(f"{source} does not match {target}: {problem}")
    module.load_state_dict(state)


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint file, unwrapped from ``{"model": ...}``-style containers.

    A file named ``.safetensors`` must be safetensors: pickle bytes under that name are refused
    unread (unpickling can run code, and whoever chose the name expected none).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    kind = sniff_format(path)
    if path.suffix == ".safetensors":
        if kind in ("torch-zip", "pickle"):
            raise UsageError(f"{path} is named .safetensors but holds a pickle (torch.save) archive; refusing to "
                             "unpickle a file given as safetensors. Rename it to .pth to read it with "
                             "torch.load(weights_only=True), or convert it to safetensors")
        return _load_safetensors(path)
    if path.suffix in PICKLE_SUFFIXES:
        obj = _load_safetensors(path) if kind == "safetensors" else load_torch_checkpoint(path)
        return unwrap_state_dict(obj, str(path))
    raise UsageError(f"{path}: unknown checkpoint format; expected .safetensors or one of {PICKLE_SUFFIXES}")


def unwrap_state_dict(obj: Any, name: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The state dict inside ``obj``: ``{"model": ...}``, ``{"module": ...}`` … wrappers and a DDP
    ``module.`` prefix are removed; anything else that is not a tensor is an error."""
    while isinstance(obj, Mapping) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        inner = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            odd = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)][:10]
            raise UsageError(f"{name}: no state dict found; entries {odd} are not tensors and none of "
                             f"{list(WRAPPER_KEYS)} holds one")
        obj = inner
    if not isinstance(obj, Mapping) or not obj:
        raise UsageError(f"{name}: expected a non-empty mapping of tensors, got {type(obj).__name__}")
    state = dict(obj)
    if all(k.startswith("module.") for k in state):  # saved from a DistributedDataParallel wrapper
        state = {k[len("module."):]: v for k, v in state.items()}
    return state
