"""Frozen encoders for evaluation: from a saved encoder folder or from a Lightning checkpoint of a fit."""

from __future__ import annotations

from pathlib import Path

import yaml
from torch import nn

from vtrep.io.pretrained import from_pretrained, read_config

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
        load_lightning_weights(cli.model, ckpt_path, config)
    return cli.model.eval(), cli.datamodule


def load_lightning_weights(model: nn.Module, ckpt_path: str, config: str) -> None:
    """Copy the ``state_dict`` of a Lightning checkpoint into ``model`` (the task built from ``config``).

    Read with ``torch.load(weights_only=True)``: a checkpoint that would unpickle code is refused unread,
    and a truncated file or one of another model is an error naming the file.
    """
    from vtrep.io.torch_files import load_matching_state, load_torch_checkpoint

    if not Path(ckpt_path).is_file():
        raise FileNotFoundError(f"ckpt_path={ckpt_path!r} does not exist")
    checkpoint = load_torch_checkpoint(ckpt_path)
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"{ckpt_path} is not a Lightning checkpoint: it has no 'state_dict' entry")
    load_matching_state(model, state, ckpt_path, f"the {type(model).__name__} of {config}")


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
