"""``PretrainTask``: what every vtrep task shares — the encoder it evaluates and its export at fit end.

A task names the module its method evaluates (:meth:`eval_encoder`; TS2Vec: the weight average, not
the iterate) and writes one artefact when ``fit`` ends, ``<run dir>/<export_name>``, through
:meth:`save_export` (an encoder folder by default: safetensors + ``config.json``). Every rank asks for
the run folder, because under DDP ``trainer.log_dir`` is a collective; only rank 0 writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from torch import nn

from vtrep.io.pretrained import save_pretrained
from vtrep.io.run_dir import run_dir


class PretrainTask(L.LightningModule):
    """Base of the vtrep tasks. Subclasses set ``export_name`` and implement :meth:`eval_encoder`."""

    export_name = "encoder"

    def __init__(self, export: bool = True) -> None:
        super().__init__()
        self._export_at_fit_end = export

    def eval_encoder(self) -> nn.Module:
        """The module this task's method evaluates downstream (probes, extraction, export)."""
        raise NotImplementedError(f"{type(self).__name__} must say which encoder it evaluates (eval_encoder)")

    def export_extra(self) -> dict[str, Any]:
        """Settings written beside the encoder's own config that extraction needs (e.g. RevIN use)."""
        return {}

    def save_export(self, out: Path) -> None:
        """Write this task's artefact to ``out`` (atomically, through :func:`save_pretrained`)."""
        save_pretrained(self.eval_encoder(), out, extra=self.export_extra() or None)

    def export_dir(self) -> Path:
        return run_dir(self.trainer) / self.export_name

    def on_fit_end(self) -> None:
        if self._export_at_fit_end:
            out = self.export_dir()  # on every rank: a collective under DDP
            if self.trainer.is_global_zero:
                self.save_export(out)
