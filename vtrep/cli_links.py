"""The SAE's ``d_in`` from the features it trains on: a LightningCLI link from the datamodule to the model.

A datamodule that knows the width of its rows (``feature_width``: :class:`~datamodules.FeatureDataModule` reads
it from the shards' ``index.json``, :class:`~datamodules.PlantedDataModule` has its ``d``) hands it to
``model.init_args.sae.init_args.d_in`` once it is built, so an SAE config need not copy the encoder's width.
jsonargparse's link replaces whatever the config gave, so the config's own value is read before anything is
built and a different one is refused (naming both widths and the features folder) instead of being dropped.
The same way an online token datamodule's ``layer_names`` become ``SAETask``'s ``layers`` (one SAE per layer).
jsonargparse leaves a link's target out of ``--print_config`` and the run's ``config.yaml``; the SAE's
exported ``config.json`` and the checkpoint's hyperparameters record the width used.
"""

from __future__ import annotations

import importlib
from typing import Callable

SAE_WIDTH = "model.init_args.sae.init_args.d_in"
SAE_LAYERS = "model.init_args.layers"


def _class_of(node) -> type | None:
    """The class a ``class_path`` / ``init_args`` node names (already imported by the parse), or ``None``."""
    class_path = node.get("class_path") if hasattr(node, "get") else None
    if not isinstance(class_path, str) or "." not in class_path:
        return None
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name, None)


class SAEWidthLink:
    """The link and its checks; ``refuse(message)`` reports a configuration error and does not return."""

    def __init__(self, refuse: Callable[[str], None]) -> None:
        self.refuse = refuse
        self.given: int | None = None
        self.has_sae, self.model = False, "the model"
        self.where = "the datamodule's rows"

    def add_to(self, parser) -> None:
        # a datamodule without feature_width makes jsonargparse skip the link: the config's d_in stands
        parser.link_arguments("data.feature_width", SAE_WIDTH, compute_fn=self.width, apply_on="instantiate")
        # an online token datamodule (vtrep.eval.online_tokens) names its layers: SAETask trains an SAE on each
        parser.link_arguments("data.layer_names", SAE_LAYERS, apply_on="instantiate")

    def check(self, settings) -> None:
        """Before instantiation: keep the config's ``d_in`` and refuse what the link cannot settle."""
        data = settings.get("data")
        data_class = _class_of(data)
        has_width = data_class is not None and hasattr(data_class, "feature_width")
        name = data_class.__name__ if data_class is not None else "the datamodule"
        self.model = settings.get("model.class_path", "the model")
        self.has_sae = SAE_WIDTH in settings
        if not self.has_sae:
            return
        self.given = settings.get(SAE_WIDTH)
        root = data.get("init_args.root") if hasattr(data, "get") else None
        self.where = f"the features in {root}" if root else f"{name}'s rows"
        if self.given is None and not has_width:
            self.refuse(f"{SAE_WIDTH} is not given and {name} has no feature_width to take it from; "
                        "set d_in to the width of the features")

    def width(self, width: int) -> int:
        """The link's value: the datamodule's width, once it agrees with the config's."""
        if not self.has_sae:  # refused here, after the datamodule's own checks (a missing folder says so first)
            self.refuse(f"the datamodule yields feature vectors for an SAE, but {self.model} has no "
                        "sae.init_args.d_in to give their width to")
        if self.given is not None and self.given != width:
            self.refuse(f"{SAE_WIDTH}={self.given} but {self.where} have width {width}; leave d_in out to take the "
                        f"features' width, or train on features of width {self.given}")
        return width
