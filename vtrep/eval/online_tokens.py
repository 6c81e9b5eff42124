"""Online SAE training data: token features of a live frozen encoder over a video or series datamodule.

:class:`EncoderTokenDataModule` wraps any vtrep video or series datamodule. Each of its training batches
of clips (series) goes through the frozen encoder on the run's device (inference mode, no grad; bf16
autocast where the device computes bf16 natively), the tokens of the chosen layers enter a
:class:`~datamodules.features.shuffle_buffer.ShuffleBuffer` and leave it as random batches
``{"features": (b, d) or (b, L, d), "meta": (b, M)}`` — the rows :class:`~vtrep.tasks.SAETask` trains on,
with the same metadata columns as ``vtrep extract`` (``clip, t, h, w, label`` / ``series, channel,
patch, label``). Several layers come from one encoder pass; ``SAETask`` then trains one SAE per layer.
Nothing is written to disk: feature shards (``vtrep extract``) stay the way to reuse tokens across runs.

The stream is the shard path's: the buffer gets one chunk per encoder batch, in loader order, and is
seeded ``seed + epoch + 7919·rank`` as :class:`~datamodules.features.shards.FeatureShards` seeds a
reader, so shards written one per encoder batch and read with ``shuffle_shards=False`` give the same
batches (a test checks the SAEs end equal).

Under DDP each rank encodes its own share of the clips (the wrapped datamodule's loaders split them,
:class:`~datamodules.common.epoch_shuffle.EpochShuffle`), and after each encoder batch the ranks agree on
how many SAE batches they all can take (one all-reduce of an integer), so no rank runs out of batches
before another; what is left in the buffers at the epoch's end is dropped there (with one process it
is yielded, the last batch short). A resumed run starts its epoch's clips again (the buffer is not
checkpointed).
"""

from __future__ import annotations

from typing import Iterator, Literal

import lightning as L
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, IterableDataset

from datamodules.common.epoch_shuffle import rank_and_world
from datamodules.features.shuffle_buffer import Columns, ShuffleBuffer
from vtrep.eval.encoder_layers import feature_width, layer_names, layer_tokens, resolve_layers
from vtrep.eval.encoders import encoder_kind, load_encoder, random_copy
from vtrep.eval.geometry import with_encoder_geometry
from vtrep.io.batches import batch_input_and_label


def _set_epoch(loader: DataLoader, epoch: int) -> None:
    """Give the wrapped loader's sampler the epoch (Lightning only tells the loaders it was handed)."""
    for sampler in (getattr(loader, "sampler", None), getattr(getattr(loader, "batch_sampler", None), "sampler", None)):
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
            return


class TokenStream(IterableDataset):
    """One pass over ``make_loader()``'s batches, encoded and (when ``shuffle``) mixed in a buffer."""

    def __init__(self, source: "EncoderTokenDataModule", split: Literal["train", "val"]) -> None:
        self.source, self.split, self.epoch = source, split, 0

    def set_epoch(self, epoch: int) -> None:
        """Shuffle as epoch ``epoch`` next (``SAETask`` calls it at each epoch start)."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[Columns]:
        source, shuffle = self.source, self.split == "train"
        rank, world = rank_and_world()
        generator = torch.Generator().manual_seed(source.seed + self.epoch + 7919 * rank) if shuffle else None
        buffer = ShuffleBuffer(source.batch_size, source.buffer_rows, generator)
        chunks = source.chunks(self.split, self.epoch)
        self.epoch += 1
        if world == 1 or not shuffle:
            for chunk in chunks:
                yield from buffer.add(chunk)
            yield from buffer.drain()
            return
        ready: list[Columns] = []
        for chunk in chunks:
            ready.extend(buffer.add(chunk))
            agreed = source.agree_min(len(ready))
            yield from ready[:agreed]
            del ready[:agreed]


class EncoderTokenDataModule(L.LightningDataModule):
    """Token features of a frozen encoder, computed while the SAE trains.

    Args:
        encoder: a saved encoder folder (``vtrep fit`` exports ``<log dir>/encoder``) or a fit checkpoint
            with ``fit_config``.
        data: the video or series datamodule whose training / validation items are encoded (a video
            datamodule left at its default ``num_frames`` / ``img_size`` takes the encoder's, as in ``vtrep extract``).
        layers: which layers' tokens (:mod:`vtrep.eval.encoder_layers`; ``[-1]``: the output). Several
            layers give rows ``(b, L, d)`` and ``SAETask`` trains one SAE per layer.
        batch_size: token rows per SAE batch.
        buffer_rows: rows kept back in the shuffling buffer (a larger buffer mixes more clips per batch).
        seed: the buffer's seed.
        random_init: encode with the same architecture at random initialisation (seeded by ``seed``): the
            control run for concept metrics.
        fit_config: the fit's ``config.yaml`` when ``encoder`` is a checkpoint.
        autocast: ``auto`` runs the encoder in bf16 autocast on a CUDA device that supports bf16;
            ``off`` keeps float32.
    """

    def __init__(self, encoder: str, data: L.LightningDataModule, layers: list[int] = [-1], batch_size: int = 4096,
                 buffer_rows: int = 1 << 16, seed: int = 0, random_init: bool = False, fit_config: str | None = None,
                 autocast: Literal["auto", "off"] = "auto") -> None:
        super().__init__()
        if batch_size <= 0 or buffer_rows < 0:
            raise ValueError(f"batch_size must be > 0 and buffer_rows >= 0, got {batch_size} and {buffer_rows}")
        if autocast not in ("auto", "off"):
            raise ValueError(f"autocast must be 'auto' or 'off', got {autocast!r}")
        self.save_hyperparameters(ignore=["data"])
        module, self.revin = load_encoder(encoder, fit_config)
        self.encoder = random_copy(module, seed) if random_init else module
        self.kind = encoder_kind(self.encoder)
        self.layers = resolve_layers(self.encoder, list(layers))
        # clip geometry (num_frames, img_size) from the encoder's config unless the data config sets it
        data = with_encoder_geometry(self.encoder, data) if self.kind == "video" else data
        self.data, self.batch_size, self.buffer_rows, self.seed = data, batch_size, buffer_rows, seed
        self.autocast, self.device = autocast, torch.device("cpu")

    @property
    def feature_width(self) -> int:
        """The tokens' width: ``vtrep fit`` gives it to the SAE as ``d_in`` (``vtrep.cli_links``)."""
        return feature_width(self.encoder)

    @property
    def layer_names(self) -> list[str]:
        """One name per chosen layer (``embedding``, ``block<i>``, ``output``): ``SAETask`` names its SAEs so."""
        return layer_names(self.encoder, self.layers)

    @property
    def meta_names(self) -> list[str]:
        return ["clip", "t", "h", "w", "label"] if self.kind == "video" else ["series", "channel", "patch", "label"]

    def prepare_data(self) -> None:
        self.data.prepare_data()

    def setup(self, stage: str | None = None) -> None:
        self.data.setup(stage)
        if self.trainer is not None:
            self.device = self.trainer.strategy.root_device
        self.encoder = self.encoder.to(self.device).eval()

    def train_dataloader(self) -> DataLoader:
        return DataLoader(TokenStream(self, "train"), batch_size=None)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(TokenStream(self, "val"), batch_size=None)

    def chunks(self, split: Literal["train", "val"], epoch: int) -> Iterator[Columns]:
        """The tokens of each batch of the wrapped ``split`` loader, in order: ``{"features", "meta"}``."""
        loader = self.data.train_dataloader() if split == "train" else self.data.val_dataloader()
        _set_epoch(loader, epoch)
        seen = 0
        for batch in loader:
            chunk = self.encode(batch, seen)
            seen = int(chunk["meta"][-1, 0]) + 1
            yield chunk

    def encode(self, batch, first_item: int) -> Columns:
        """One batch of clips or series → its token rows, items numbered from ``first_item``."""
        x, label = batch_input_and_label(batch, self.kind)
        x = x.to(self.device, non_blocking=True)
        if self.kind == "series":
            x = x.float()
        with torch.inference_mode(), torch.autocast(self.device.type, torch.bfloat16, enabled=self._bf16()):
            tokens, cells = layer_tokens(self.encoder, x, self.kind, self.layers, self.revin)
        b, m = tokens.shape[:2]
        features = tokens.clone()  # a normal tensor: inference tensors cannot be saved for the SAE's backward
        features = features.reshape(b * m, *features.shape[2:]) if len(self.layers) > 1 else features.reshape(b * m, -1)
        labels = torch.full((b,), -1, dtype=torch.long) if label is None else torch.as_tensor(label).long().cpu()
        items = first_item + torch.arange(b)
        meta = torch.cat([items.repeat_interleave(m)[:, None], cells.repeat(b, 1), labels.repeat_interleave(m)[:, None]],
                         dim=1)
        return {"features": features, "meta": meta}

    def _bf16(self) -> bool:
        return self.autocast == "auto" and self.device.type == "cuda" and torch.cuda.is_bf16_supported()

    def agree_min(self, count: int) -> int:
        """The smallest ``count`` over the ranks (every rank calls it with its own)."""
        value = torch.tensor([count], device=self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MIN)
        return int(value.item())
