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
from pathlib import Path
from typing import Literal

import torch
from lightning.pytorch.utilities import rank_zero_only

from vtrep.checks import positive
from vtrep.io.batches import batch_input
from vtrep.io.run_dir import run_dir
from vtrep.sae.base import SparseAutoencoder
from vtrep.sae.metrics import SAEMetrics
from vtrep.tasks.base import PretrainTask
from vtrep.tensor_identity import TensorKey, same_tensor, tensor_key


def batch_features(batch) -> torch.Tensor:
    """The ``(n, d)`` features of a batch (tensor, ``(features, ...)`` or ``{"features": ...}``), float."""
    batch = batch_input(batch, "features")
    if batch.dim() != 2:
        raise ValueError(f"SAE batches are (n, d) feature vectors, got shape {tuple(batch.shape)}")
    return batch.float()


class PooledFeatures:
    """Per-clip sums of original and reconstructed token features, for the downstream probe check."""

    def __init__(self) -> None:
        self.clips: dict[int, list] = {}

    @torch.no_grad()
    def update(self, clip: torch.Tensor, label: torch.Tensor, x: torch.Tensor, x_hat: torch.Tensor) -> None:
        for c in clip.unique().tolist():
            rows = clip == c
            self._add(c, x[rows].sum(0).double().cpu(), x_hat[rows].sum(0).double().cpu(), int(rows.sum()),
                      int(label[rows][0]))

    def merge(self, others: list[dict[int, list]]) -> None:
        """Add other ranks' per-clip sums (a clip split between ranks' shards is summed, not duplicated)."""
        for clips in others:
            for c, entry in clips.items():
                self._add(c, *entry)

    def _add(self, clip: int, x_sum: torch.Tensor, x_hat_sum: torch.Tensor, count: int, label: int) -> None:
        entry = self.clips.setdefault(clip, [0.0, 0.0, 0, label])
        entry[0], entry[1], entry[2] = entry[0] + x_sum, entry[1] + x_hat_sum, entry[2] + count

    def probe(self) -> dict[str, float]:
        """Top-1 of a linear probe on mean-pooled original vs reconstructed features (even clips train, odd test)."""
        from vtrep.probes.linear_probe import fit_linear_probe

        ids = sorted(self.clips)
        labels = torch.tensor([self.clips[c][3] for c in ids])
        if (labels < 0).any():
            raise ValueError("probe_check needs a label for every clip (meta label column is -1)")
        train, test = torch.arange(len(ids)) % 2 == 0, torch.arange(len(ids)) % 2 == 1
        results = {}
        # validation runs in inference mode; the probe trains, so it needs ordinary tensors and autograd
        with torch.inference_mode(False), torch.enable_grad():
            for name, slot in (("original", 0), ("reconstructed", 1)):
                pooled = torch.stack([self.clips[c][slot].clone() / self.clips[c][2] for c in ids]).float()
                results[name] = fit_linear_probe(pooled[train], labels[train].clone(), pooled[test],
                                                 labels[test].clone(), int(labels.max()) + 1).top1
        return results


class SAETask(PretrainTask):
    """Args:
        sae: the variant (``class_path`` in YAML), e.g. :class:`~vtrep.sae.topk.TopKSAE`.
        lr: Adam learning rate; ``None`` = ``2e-4 / sqrt(K / 16384)``.
        decoder_bias_init: ``geometric_median``, ``mean`` or ``none``.
        normalise_input: fit the input scale on the first batch.
        dense_threshold: firing rate above which a latent counts as dense in the metrics.
        probe_check: at each validation end, the downstream check — mean-pool the original and the
            reconstructed token features per clip/series (``meta[:, clip_column]``), fit the linear
            probe (:func:`~vtrep.probes.linear_probe.fit_linear_probe`) on even-numbered clips, test on
            odd ones, log ``val/probe_original`` and ``val/probe_reconstructed`` (batches must be dicts
            with ``meta``; the label is ``meta[:, label_column]``). Under DDP the per-clip sums of all
            ranks are gathered first, so every rank fits the same probe on every validation clip.

        density_report: at each validation end, draw the latent density (histogram of log10 firing rates
            on the validation inputs, dead latents apart) to ``<run dir>/sae_reports/`` and log it as
            ``val/latent_density`` to W&B or TensorBoard.
        export_sae: at the end of ``fit``, save the SAE (input scale folded) as ``<log dir>/sae``
            (``vtrep.sae.io.save_sae``), the folder ``tools/sae_report.py`` reads.

    Under DDP the validation metrics are computed from the sums over all ranks (:meth:`SAEMetrics.sync`)
    and TopK-family dead-latent counters count every rank's inputs. The first-batch initialisation
    (input scale, ``b_dec``, archetypal candidates) is rank 0's, broadcast to the others.
    """

    export_name = "sae"

    def __init__(self, sae: SparseAutoencoder, lr: float | None = None,
                 decoder_bias_init: Literal["geometric_median", "mean", "none"] = "geometric_median",
                 normalise_input: bool = True, dense_threshold: float = 0.1, probe_check: bool = False,
                 clip_column: int = 0, label_column: int = -1, export_sae: bool = True,
                 density_report: bool = True) -> None:
        super().__init__(export=export_sae)
        if decoder_bias_init not in ("geometric_median", "mean", "none"):
            raise ValueError(f"decoder_bias_init must be 'geometric_median', 'mean' or 'none', got {decoder_bias_init!r}")
        if lr is not None:
            positive("lr", lr)
        if probe_check and clip_column == label_column:
            raise ValueError(f"clip_column and label_column must be different meta columns, both are {clip_column}")
        self.sae = sae
        self.lr = lr if lr is not None else 2e-4 / math.sqrt(sae.num_latents / 16384)
        self.decoder_bias_init, self.normalise_input = decoder_bias_init, normalise_input
        self.register_buffer("initialised", torch.tensor(False))  # in checkpoints: a resumed run skips the init
        self._initialised_seen: tuple[TensorKey, bool] | None = None
        self.metrics = SAEMetrics(sae.num_latents, dense_threshold)
        self.probe_check, self.clip_column, self.label_column = probe_check, clip_column, label_column
        self.pooled = PooledFeatures()
        self.density_report = density_report

    def eval_encoder(self) -> torch.nn.Module:
        """The module this task trains and evaluates: the sparse autoencoder."""
        return self.sae

    @torch.no_grad()
    def initialise_from(self, x: torch.Tensor) -> None:
        """Input scale and decoder bias from a first batch of features."""
        if self.normalise_input:
            self.sae.fit_input_scale(x)
        if self.decoder_bias_init != "none":
            self.sae.init_decoder_bias(x, self.decoder_bias_init)
        self.sae.init_from_data(x)
        self.initialised.fill_(True)
        self._initialised_seen = (tensor_key(self.initialised), True)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            # every rank initialised from its own first batch: take rank 0's, so the replicas start equal
            for tensor in [*self.sae.parameters(), *self.sae.buffers()]:
                torch.distributed.broadcast(tensor.data, src=0)

    @property
    def is_initialised(self) -> bool:
        """``initialised`` as a Python bool, read from the buffer only after something wrote or replaced it
        (a checkpoint load, a move to the device), so a training step does not wait on the device.

        The cache is keyed by the buffer object and its in-place version (:mod:`vtrep.tensor_identity`).
        """
        seen, buffer = self._initialised_seen, self.initialised
        if seen is None or not same_tensor(seen[0], buffer):
            seen = self._initialised_seen = (tensor_key(buffer), bool(buffer))
        return seen[1]

    def reduce_across_ranks(self, tensor: torch.Tensor, op: Literal["sum", "min"] = "sum") -> torch.Tensor:
        return self.trainer.strategy.reduce(tensor.to(self.device), reduce_op=op)

    def pooled_across_ranks(self) -> PooledFeatures:
        import torch.distributed as dist

        gathered: list = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, self.pooled.clips)
        merged = PooledFeatures()
        merged.merge(gathered)
        return merged

    def on_fit_start(self) -> None:
        if self.trainer.world_size > 1:
            # dead-latent counters (TopK, "sum") and the BatchTopK threshold ("min") agree across ranks
            self.sae.set_rank_reduce(self.reduce_across_ranks)

    def on_train_epoch_start(self) -> None:
        # feature shards shuffle by epoch number; after a resume their own pass counter restarts at 0.
        # (Read by the iterator's first batch, so exact with in-process loading; worker copies keep their own.)
        dataset = getattr(self.trainer.train_dataloader, "dataset", None)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(self.current_epoch)

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        if not self.is_initialised:
            self.initialise_from(batch_features(batch))

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        out = self.sae.loss(batch_features(batch))
        logs = {f"train/{name}": value.detach() for name, value in out.parts.items()}
        logs["train/l0"] = out.l0
        self.log_dict(logs, prog_bar=False)
        self.log("train/loss", out.loss.detach(), prog_bar=True)
        return out.loss

    def on_before_optimizer_step(self, optimizer) -> None:
        self.sae.remove_parallel_gradient()

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        self.sae.normalise_decoder()

    def validation_step(self, batch, batch_idx: int) -> None:
        if not self.is_initialised:  # Lightning's sanity check runs before the first-batch initialisation
            return
        x = batch_features(batch)
        codes = self.sae.encode(x)
        x_hat = self.sae.decode(codes)
        self.metrics.update(x, x_hat, codes)
        if self.probe_check:
            if not isinstance(batch, dict) or "meta" not in batch:
                raise ValueError("probe_check needs dict batches with 'meta' (clip and label columns)")
            meta = batch["meta"]
            self.pooled.update(meta[:, self.clip_column], meta[:, self.label_column], x, x_hat)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.world_size > 1:  # sums over every rank's inputs, not a mean of per-rank ratios
            self.metrics.sync(self.reduce_across_ranks)
        if self.metrics.count:
            self.log_dict({f"val/{name}": value for name, value in self.metrics.compute().items()})
            if self.density_report and not self.trainer.sanity_checking:
                # every rank asks for the folder: under DDP trainer.log_dir is a collective
                self.write_density_report(run_dir(self.trainer) / "sae_reports")
        if self.probe_check and self.trainer.world_size > 1:  # one probe on every rank's clips
            self.pooled = self.pooled_across_ranks()
        if self.probe_check and self.pooled.clips:
            self.log_dict({f"val/probe_{name}": value for name, value in self.pooled.probe().items()})
        self.metrics.reset()
        self.pooled = PooledFeatures()

    @rank_zero_only
    def write_density_report(self, out_dir: Path) -> None:
        from torchvision.utils import save_image

        from vtrep.reports.sae_density import firing_density_image
        from vtrep.reports.to_logger import log_image

        image = firing_density_image(self.metrics.fired, self.metrics.count,
                                     f"step {self.global_step}: latent density on {self.metrics.count} inputs")
        out_dir.mkdir(parents=True, exist_ok=True)
        save_image(image, str(out_dir / f"density_step_{self.global_step:07d}.png"))
        log_image(self.logger, "val/latent_density", image, self.global_step)

    def on_fit_end(self) -> None:
        self.sae.set_rank_reduce(None)  # collectives only while the process group lives
        super().on_fit_end()

    def save_export(self, out: Path) -> None:
        """The SAE with its input scale folded in (:func:`~vtrep.sae.io.save_sae`), read by ``tools/sae_report.py``."""
        from vtrep.sae.io import save_sae

        save_sae(self.sae, out)

    def configure_optimizers(self):
        return torch.optim.Adam(self.sae.parameters(), lr=self.lr)
