"""Clip geometry from the encoder: ``vtrep probe`` / ``extract`` take ``num_frames`` and ``img_size`` from the
encoder's ``config.json`` unless the data config sets them, so a user never copies them by hand.

A data setting left at its default is replaced by the encoder's value (the datamodule is rebuilt from
its recorded arguments, with one line saying so); a value the user set that disagrees is refused before
any clip is decoded, naming both values and the option to change.
"""

from __future__ import annotations

import inspect

import lightning as L
from torch import nn

from vtrep.errors import UsageError

GEOMETRY = ("num_frames", "img_size")


def with_encoder_geometry(encoder: nn.Module, data: L.LightningDataModule) -> L.LightningDataModule:
    """``data``, or a copy of it rebuilt with the encoder's clip geometry where ``data`` kept its defaults."""
    config = getattr(encoder, "config", None)
    hparams = dict(getattr(data, "hparams", {}) or {})
    if not isinstance(config, dict) or not hparams:
        return data
    signature = inspect.signature(type(data).__init__).parameters
    changes = {}
    for name in GEOMETRY:
        if name not in config or name not in hparams or name not in signature:
            continue
        want, given = config[name], hparams[name]
        if given == want:
            continue
        if given != signature[name].default:
            raise UsageError(f"the encoder takes {name}={want} (its config.json) but the data sets {name}={given}; "
                             f"drop --data.init_args.{name} or set it to {want}")
        changes[name] = want
    if not changes:
        return data
    settings = ", ".join(f"{k}={v}" for k, v in changes.items())
    print(f"data: {settings} from the encoder's config.json (the data config left them at their defaults)")
    return type(data)(**{**hparams, **changes})
