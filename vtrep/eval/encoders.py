"""Frozen encoders for evaluation: from a saved encoder folder or from a Lightning checkpoint of a fit."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml
from torch import nn

from vtrep.pretrained import from_pretrained, read_config


FIT_CONFIG_KEYS = ("seed_everything", "trainer", "model", "data", "optimizer", "lr_scheduler")


def load_task(config: str, ckpt_path: str | None = None):
    """The task and datamodule of a ``vtrep fit`` config, with weights from a Lightning checkpoint."""
    from vtrep.cli import VtrepCLI

    if not Path(config).is_file():
        raise FileNotFoundError(f"config={config!r} does not exist")
    settings = yaml.safe_load(Path(config).read_text())
    if not isinstance(settings, dict) or "model" not in settings:
        raise ValueError(f"{config} is not a vtrep fit config (no `model`)")
    # the config.yaml a fit writes also holds the fit subcommand's own options (ckpt_path, weights_only, ...)
    settings = {key: value for key, value in settings.items() if key in FIT_CONFIG_KEYS}
    settings["trainer"] = {**(settings.get("trainer") or {}), "logger": False}
    cli = VtrepCLI(subclass_mode_model=True, subclass_mode_data=True, run=False, args=settings)
    if ckpt_path is not None:
        if not Path(ckpt_path).is_file():
            raise FileNotFoundError(f"ckpt_path={ckpt_path!r} does not exist")
        # Lightning checkpoints hold pickled hyper-parameters: load only checkpoints you trust.
        state = torch.load(ckpt_path, map_location="cpu", weights_only=False)["state_dict"]
        cli.model.load_state_dict(state)
    return cli.model.eval(), cli.datamodule


def encoder_kind(encoder: nn.Module) -> str:
    """``video`` for a grid encoder (``forward_features`` over ``grid``), else ``series``."""
    return "video" if hasattr(encoder, "grid") and hasattr(encoder, "forward_features") else "series"


def load_encoder(encoder: str, config: str | None = None) -> tuple[nn.Module, bool]:
    """A frozen encoder and whether its series input is RevIN-normalised.

    ``encoder`` is a folder written by ``save_pretrained`` (``vtrep fit`` exports ``<log dir>/encoder``),
    or a Lightning ``.ckpt`` of a fit together with that fit's ``config`` (the encoder is the task's
    ``backbone`` or ``encoder``).
    """
    path = Path(encoder)
    if path.is_dir():
        module, revin = from_pretrained(path), bool(read_config(path).get("revin", True))
    elif path.is_file():
        if config is None:
            raise ValueError(f"encoder={encoder!r} is a checkpoint file: pass the fit's config.yaml too (fit_config)")
        task, _ = load_task(config, encoder)
        module = getattr(task, "backbone", None)
        module = getattr(task, "encoder", None) if module is None else module
        if module is None:
            raise ValueError(f"{type(task).__name__} has neither `backbone` nor `encoder`")
        revin = getattr(task, "revin", None) is not None
    else:
        raise FileNotFoundError(f"encoder={encoder!r} is neither a saved encoder folder nor a checkpoint file")
    for param in module.parameters():
        param.requires_grad_(False)
    return module.eval(), revin
