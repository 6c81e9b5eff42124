"""Frozen encoders for evaluation: from a saved encoder folder or from a Lightning checkpoint of a fit."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from vtrep.errors import UsageError
from vtrep.io.class_paths import LIBRARY_PACKAGES, VTREP_PACKAGES, check_class_path
from vtrep.io.config_files import read_fit_config
from vtrep.io.lightning_checkpoint import lightning_state_dict
from vtrep.io.pretrained import from_pretrained, read_config
from vtrep.io.torch_files import load_matching_state


def load_task(config: str, ckpt_path: str | None = None):
    """The task and datamodule of a ``vtrep fit`` config, with weights from a Lightning checkpoint."""
    settings = read_fit_config(config)  # piece files inlined, nothing imported yet
    if "model" not in settings:
        raise UsageError(f"{config} is not a vtrep fit config (no `model`)")
    _check_class_paths(settings, where=config)
    model, datamodule = _build_model_and_data(settings.get("model"), settings.get("data"))
    if ckpt_path is not None:
        load_lightning_weights(model, ckpt_path, config)
    return model.eval(), datamodule


def _check_class_paths(node, where: str) -> None:
    """Refuse, before any import, a fit config that names a class outside vtrep (and the library ones it may use)."""
    if isinstance(node, dict):
        if "class_path" in node:
            check_class_path(node["class_path"], VTREP_PACKAGES + LIBRARY_PACKAGES, where=where)
        for value in node.values():
            _check_class_paths(value, where)
    elif isinstance(node, list):
        for value in node:
            _check_class_paths(value, where)


def _build_model_and_data(model: dict, data: dict | None):
    """The task and datamodule a fit config's ``model`` / ``data`` entries describe (no trainer, no CLI)."""
    import lightning as L
    from jsonargparse import ArgumentParser

    from vtrep.cli_links import SAEWidthLink

    def refuse(message: str) -> None:
        raise UsageError(message)

    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(L.LightningModule, "model", required=True)
    parser.add_subclass_arguments(L.LightningDataModule, "data", required=False)
    link = SAEWidthLink(refuse)  # what `vtrep fit` linked (an SAE's d_in, its layers) config.yaml leaves out
    link.add_to(parser)
    parsed = parser.parse_object({"model": model, **({"data": data} if data else {})})
    link.check(parsed)
    built = parser.instantiate_classes(parsed)
    return built.model, built.get("data")


def load_lightning_weights(model: nn.Module, ckpt_path: str, config: str) -> None:
    """Copy the ``state_dict`` of a Lightning checkpoint into ``model`` (the task built from ``config``)."""
    load_matching_state(model, lightning_state_dict(ckpt_path), ckpt_path, f"the {type(model).__name__} of {config}")


def encoder_kind(encoder: nn.Module) -> str:
    """``video`` for a grid encoder (``forward_features`` over ``grid``), else ``series``."""
    return "video" if hasattr(encoder, "grid") and hasattr(encoder, "forward_features") else "series"


def task_encoder(task: nn.Module) -> nn.Module:
    """The encoder a task's method evaluates: ``task.eval_encoder()`` (TS2Vec: the weight-averaged encoder)."""
    eval_encoder = getattr(task, "eval_encoder", None)
    if not callable(eval_encoder):
        raise ValueError(f"{type(task).__name__} has no `eval_encoder()`: it does not say which encoder it evaluates")
    module = eval_encoder()
    if not isinstance(module, nn.Module):
        raise ValueError(f"{type(task).__name__}.eval_encoder() returned {type(module).__name__}, not a module")
    return module


def load_encoder(encoder: str, config: str | None = None) -> tuple[nn.Module, bool]:
    """A frozen encoder and whether its series input is RevIN-normalised.

    ``encoder`` is a folder written by ``save_pretrained`` (``vtrep fit`` exports ``<log dir>/encoder``),
    or a Lightning ``.ckpt`` of a fit together with that fit's ``config`` (the encoder is the task's
    :func:`task_encoder`, e.g. TS2Vec's weight average rather than its last iterate).
    """
    path = Path(encoder)
    if path.is_dir():
        module, revin = from_pretrained(path), bool(read_config(path).get("revin", True))
    elif path.is_file():
        if config is None:
            raise UsageError(f"encoder={encoder!r} is a checkpoint file: pass the fit's config.yaml too (fit_config)")
        task, _ = load_task(config, encoder)
        module = task_encoder(task)
        revin = getattr(task, "revin", None) is not None
    else:
        raise FileNotFoundError(f"encoder={encoder!r} is neither a saved encoder folder nor a checkpoint file")
    for param in module.parameters():
        param.requires_grad_(False)
    return module.eval(), revin


def random_copy(encoder: nn.Module, seed: int) -> nn.Module:
    """The same architecture at random initialisation (from its recorded constructor arguments)."""
    if not isinstance(getattr(encoder, "config", None), dict):
        raise ValueError(f"{type(encoder).__name__} records no constructor arguments; cannot build a random copy")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return type(encoder)(**encoder.config).eval()
