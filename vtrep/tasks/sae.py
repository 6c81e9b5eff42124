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


def batch_features(batch, layers: int = 1) -> list[torch.Tensor]:
    """The ``(n, d)`` features of each layer of a batch (tensor, ``(features, ...)`` or ``{"features": ...}``),
    float: rows ``(n, d)`` for one layer, ``(n, L, d)`` for ``L`` layers (:mod:`vtrep.eval.online_tokens`)."""
    batch = batch_input(batch, "features")
    if layers == 1 and batch.dim() == 2:
        return [batch.float()]
    if batch.dim() != 3 or batch.shape[1] != layers:
        want = "(n, d) feature vectors" if layers == 1 else f"(n, {layers}, d) rows (one vector per layer)"
        raise ValueError(f"SAE batches are {want}, got shape {tuple(batch.shape)}")
    return [batch[:, i].float() for i in range(layers)]


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
            (``vtrep.sae.io.save_sae``), the folder ``tools/sae_report.py`` reads; with several layers,
            one folder per layer, ``<log dir>/sae/<layer>``.
        layers: names of the encoder layers the rows hold, one SAE each (``vtrep fit`` takes them from an
            :class:`~vtrep.eval.online_tokens.EncoderTokenDataModule`); ``None``: one SAE on ``(n, d)`` rows.
            Every layer's SAE is built from ``sae``'s configuration (its own random initialisation) and
            trains on its layer's vectors of the same tokens; the loss is their sum (one optimiser).
            Metrics are logged per layer as ``<stage>/<layer>/<name>``.

    Under DDP the validation metrics are computed from the sums over all ranks (:meth:`SAEMetrics.sync`)
    and TopK-family dead-latent counters count every rank's inputs. The first-batch initialisation
    (input scale, ``b_dec``, archetypal candidates) is rank 0's, broadcast to the others.
    """

    export_name = "sae"

    def __init__(self, sae: SparseAutoencoder, lr: float | None = None,
                 decoder_bias_init: Literal["geometric_median", "mean", "none"] = "geometric_median",
                 normalise_input: bool = True, dense_threshold: float = 0.1, probe_check: bool = False,
                 clip_column: int = 0, label_column: int = -1, export_sae: bool = True,
                 density_report: bool = True, layers: list[str] | None = None) -> None:
        super().__init__(export=export_sae)
        if decoder_bias_init not in ("geometric_median", "mean", "none"):
            raise ValueError(f"decoder_bias_init must be 'geometric_median', 'mean' or 'none', got {decoder_bias_init!r}")
        if lr is not None:
            positive("lr", lr)
        if probe_check and clip_column == label_column:
            raise ValueError(f"clip_column and label_column must be different meta columns, both are {clip_column}")
        if layers is not None and (not layers or len(set(layers)) != len(layers)):
            raise ValueError(f"layers must be distinct layer names, got {layers!r}")
        self.sae = sae
        self.layers = list(layers) if layers and len(layers) > 1 else None
        # more layers: an SAE each, built from the first one's recorded configuration
        self.more_saes = torch.nn.ModuleList(type(sae)(**sae.config) for _ in (self.layers or [])[1:])
        self.lr = lr if lr is not None else 2e-4 / math.sqrt(sae.num_latents / 16384)
        self.decoder_bias_init, self.normalise_input = decoder_bias_init, normalise_input
        self.register_buffer("initialised", torch.tensor(False))  # in checkpoints: a resumed run skips the init
        self._initialised_seen: tuple[TensorKey, bool] | None = None
        self.metrics = [SAEMetrics(sae.num_latents, dense_threshold) for _ in self.saes]
        self.probe_check, self.clip_column, self.label_column = probe_check, clip_column, label_column
        self.pooled = [PooledFeatures() for _ in self.saes]
        self.density_report = density_report

    @property
    def saes(self) -> list[SparseAutoencoder]:
        """One SAE per layer (just ``sae`` for one layer)."""
        return [self.sae, *self.more_saes]

    def stage_key(self, stage: str, index: int, name: str) -> str:
        """``<stage>/<name>``, or ``<stage>/<layer>/<name>`` with several layers."""
        return f"{stage}/{name}" if self.layers is None else f"{stage}/{self.layers[index]}/{name}"

    def eval_encoder(self) -> torch.nn.Module:
        """The module this task trains and evaluates: the sparse autoencoder (the first layer's)."""
        return self.sae

    @torch.no_grad()
    def initialise_from(self, xs: list[torch.Tensor]) -> None:
        """Input scale and decoder bias of each layer's SAE from a first batch of its features."""
        for sae, x in zip(self.saes, xs):
            if self.normalise_input:
                sae.fit_input_scale(x)
            if self.decoder_bias_init != "none":
                sae.init_decoder_bias(x, self.decoder_bias_init)
            sae.init_from_data(x)
        self.initialised.fill_(True)
        self._initialised_seen = (tensor_key(self.initialised), True)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            # every rank initialised from its own first batch: take rank 0's, so the replicas start equal
            for sae in self.saes:
                for tensor in [*sae.parameters(), *sae.buffers()]:
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

    @staticmethod
    def pooled_across_ranks(pooled: PooledFeatures) -> PooledFeatures:
        import torch.distributed as dist

        gathered: list = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, pooled.clips)
        merged = PooledFeatures()
        merged.merge(gathered)
        return merged

    def on_fit_start(self) -> None:
        if self.trainer.world_size > 1:
            # dead-latent counters (TopK, "sum") and the BatchTopK threshold ("min") agree across ranks
            for sae in self.saes:
                sae.set_rank_reduce(self.reduce_across_ranks)

    def on_train_epoch_start(self) -> None:
        # feature shards (and online token streams) shuffle by epoch number; after a resume their own pass
        # counter restarts at 0. (Read by the iterator's first batch, so exact with in-process loading;
        # worker copies keep their own.)
        dataset = getattr(self.trainer.train_dataloader, "dataset", None)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(self.current_epoch)

    def layer_features(self, batch) -> list[torch.Tensor]:
        return batch_features(batch, len(self.saes))

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        if not self.is_initialised:
            self.initialise_from(self.layer_features(batch))

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss = 0.0
        for index, (sae, x) in enumerate(zip(self.saes, self.layer_features(batch))):
            out = sae.loss(x)
            logs = {self.stage_key("train", index, name): value.detach() for name, value in out.parts.items()}
            logs[self.stage_key("train", index, "l0")] = out.l0
            if self.layers is not None:
                logs[self.stage_key("train", index, "loss")] = out.loss.detach()
            self.log_dict(logs, prog_bar=False)
            loss = loss + out.loss
        self.log("train/loss", loss.detach(), prog_bar=True)
        return loss

    def on_before_optimizer_step(self, optimizer) -> None:
        for sae in self.saes:
            sae.remove_parallel_gradient()

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        for sae in self.saes:
            sae.normalise_decoder()

    def validation_step(self, batch, batch_idx: int) -> None:
        if not self.is_initialised:  # Lightning's sanity check runs before the first-batch initialisation
            return
        if self.probe_check and (not isinstance(batch, dict) or "meta" not in batch):
            raise ValueError("probe_check needs dict batches with 'meta' (clip and label columns)")
        for sae, x, metrics, pooled in zip(self.saes, self.layer_features(batch), self.metrics, self.pooled):
            codes = sae.encode(x)
            x_hat = sae.decode(codes)
            metrics.update(x, x_hat, codes)
            if self.probe_check:
                meta = batch["meta"]
                pooled.update(meta[:, self.clip_column], meta[:, self.label_column], x, x_hat)

    def on_validation_epoch_end(self) -> None:
        for index, metrics in enumerate(self.metrics):
            self.log_layer_validation(index, metrics)
        self.metrics = [SAEMetrics(m.num_latents, m.dense_threshold) for m in self.metrics]
        self.pooled = [PooledFeatures() for _ in self.saes]

    def log_layer_validation(self, index: int, metrics: SAEMetrics) -> None:
        if self.trainer.world_size > 1:  # sums over every rank's inputs, not a mean of per-rank ratios
            metrics.sync(self.reduce_across_ranks)
        # the values are already every rank's (synced sums, merged probe): sync_dist's mean of equal values is
        # that value, and says so to Lightning, which otherwise warns about epoch-level logging under DDP
        sync = self.trainer.world_size > 1
        if metrics.count:
            self.log_dict({self.stage_key("val", index, name): value for name, value in metrics.compute().items()},
                          sync_dist=sync)
            if self.density_report and not self.trainer.sanity_checking:
                # every rank asks for the folder: under DDP trainer.log_dir is a collective
                folder = run_dir(self.trainer) / "sae_reports"
                self.write_density_report(folder if self.layers is None else folder / self.layers[index], metrics)
        pooled = self.pooled[index]
        if self.probe_check and self.trainer.world_size > 1:  # one probe on every rank's clips
            pooled = self.pooled_across_ranks(pooled)
        if self.probe_check and pooled.clips:
            self.log_dict({self.stage_key("val", index, f"probe_{name}"): value
                           for name, value in pooled.probe().items()}, sync_dist=sync)

    @rank_zero_only
    def write_density_report(self, out_dir: Path, metrics: SAEMetrics) -> None:
        from torchvision.utils import save_image

        from vtrep.reports.sae_density import firing_density_image
        from vtrep.reports.to_logger import log_image

        image = firing_density_image(metrics.fired, metrics.count,
                                     f"step {self.global_step}: latent density on {metrics.count} inputs")
        out_dir.mkdir(parents=True, exist_ok=True)
        save_image(image, str(out_dir / f"density_step_{self.global_step:07d}.png"))
        key = "val/latent_density" if out_dir.name == "sae_reports" else f"val/{out_dir.name}/latent_density"
        log_image(self.logger, key, image, self.global_step)

    def on_fit_end(self) -> None:
        for sae in self.saes:
            sae.set_rank_reduce(None)  # collectives only while the process group lives
        super().on_fit_end()

    def save_export(self, out: Path) -> None:
        """The SAE with its input scale folded in (:func:`~vtrep.sae.io.save_sae`), read by ``tools/sae_report.py``;
        with several layers one folder each, ``out/<layer>``."""
        from vtrep.sae.io import save_sae

        if self.layers is None:
            save_sae(self.sae, out)
            return
        for name, sae in zip(self.layers, self.saes):
            save_sae(sae, out / name)

    def configure_optimizers(self):
        return torch.optim.Adam([p for sae in self.saes for p in sae.parameters()], lr=self.lr)
