"""``SAETask``: train a sparse autoencoder on frozen encoder features.

Batches are feature vectors ``(n, d)`` — a tensor, the first item of a tuple, or ``batch["features"]``.
On the first training batch (unless resumed) the input scale is fitted (``E‖x/s‖² = d``) and
``b_dec`` set to that batch's geometric median (or mean). Each step: loss → backward → the decoder
gradient's component along each row is removed → optimiser step → decoder rows renormalised
(the order OpenAI, sparsify and SAELens use). Validation logs :class:`~vtrep.sae.metrics.SAEMetrics`
under ``val/<name>`` with their stated definitions; training logs the loss parts and L0.
Optimiser: Adam, by default at sparsify's ``2e-4 / sqrt(K / 16384)``.
"""

from __future__ import annotations

import math
from typing import Literal

import lightning as L
import torch

from vtrep.sae.base import SparseAutoencoder
from vtrep.sae.metrics import SAEMetrics


def batch_features(batch) -> torch.Tensor:
    """The ``(n, d)`` features of a batch (tensor, ``(features, ...)`` or ``{"features": ...}``), float."""
    if isinstance(batch, dict):
        if "features" not in batch:
            raise ValueError(f"a dict batch needs a 'features' entry, got keys {sorted(batch)}")
        batch = batch["features"]
    elif isinstance(batch, (tuple, list)):
        batch = batch[0]
    if batch.dim() != 2:
        raise ValueError(f"SAE batches are (n, d) feature vectors, got shape {tuple(batch.shape)}")
    return batch.float()


class SAETask(L.LightningModule):
    """Args:
        sae: the variant (``class_path`` in YAML), e.g. :class:`~vtrep.sae.topk.TopKSAE`.
        lr: Adam learning rate; ``None`` = ``2e-4 / sqrt(K / 16384)``.
        decoder_bias_init: ``geometric_median``, ``mean`` or ``none``.
        normalise_input: fit the input scale on the first batch.
        dense_threshold: firing rate above which a latent counts as dense in the metrics.
    """

    def __init__(self, sae: SparseAutoencoder, lr: float | None = None,
                 decoder_bias_init: Literal["geometric_median", "mean", "none"] = "geometric_median",
                 normalise_input: bool = True, dense_threshold: float = 0.1) -> None:
        super().__init__()
        if decoder_bias_init not in ("geometric_median", "mean", "none"):
            raise ValueError(f"decoder_bias_init must be 'geometric_median', 'mean' or 'none', got {decoder_bias_init!r}")
        self.sae = sae
        self.lr = lr if lr is not None else 2e-4 / math.sqrt(sae.num_latents / 16384)
        self.decoder_bias_init, self.normalise_input = decoder_bias_init, normalise_input
        self.register_buffer("initialised", torch.tensor(False))
        self.metrics = SAEMetrics(sae.num_latents, dense_threshold)

    @torch.no_grad()
    def initialise_from(self, x: torch.Tensor) -> None:
        """Input scale and decoder bias from a first batch of features."""
        if self.normalise_input:
            self.sae.fit_input_scale(x)
        if self.decoder_bias_init != "none":
            self.sae.init_decoder_bias(x, self.decoder_bias_init)
        self.initialised.fill_(True)

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        if not bool(self.initialised):
            self.initialise_from(batch_features(batch))

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        out = self.sae.loss(batch_features(batch))
        logs = {f"train/{name}": value.detach() for name, value in out.parts.items()}
        logs["train/l0"] = (out.codes != 0).sum(dim=1).float().mean()
        self.log_dict(logs, prog_bar=False)
        self.log("train/loss", out.loss.detach(), prog_bar=True)
        return out.loss

    def on_before_optimizer_step(self, optimizer) -> None:
        self.sae.remove_parallel_gradient()

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        self.sae.normalise_decoder()

    def validation_step(self, batch, batch_idx: int) -> None:
        x = batch_features(batch)
        codes = self.sae.encode(x)
        self.metrics.update(x, self.sae.decode(codes), codes)

    def on_validation_epoch_end(self) -> None:
        if self.metrics.count:
            self.log_dict({f"val/{name}": value for name, value in self.metrics.compute().items()})
        self.metrics.reset()

    def configure_optimizers(self):
        return torch.optim.Adam(self.sae.parameters(), lr=self.lr)
