"""Temporal statistics of SAE latents over a feature folder, for concept reports (no drawing here).

Axes: ``n`` tokens, ``K`` latents, ``M`` metadata columns, ``P`` positions along time (video ``t``,
series ``patch`` or time step), ``u`` items (clips or series) in a chunk, ``L`` selected latents.

A latent is *on* at a token when its code is > 0 (signed codes, e.g. AbsTopK's, count on their
positive side only). A *position* of an item is on when any token at it is on (video: any of the
``h × w`` tokens of temporal index ``t``; series: any channel at that patch). Per latent:

- ``token_rate``: fraction of all tokens where the latent is on.
- ``item_fraction``: fraction of items with at least one token on (``items_on`` of ``items``).
- ``mean_on`` / ``max_on``: mean and largest code over the tokens where it is on.
- ``where (P,)``: over all (item, position) pairs that are on, the fraction at each position (sums to 1).
- runs: maximal stretches of consecutive positions on within one item. ``run_hist (P,)`` counts runs
  of length ``r = 1 .. P``; ``mean_run_tokens`` / ``max_run_tokens`` are in positions, and
  ``mean_run_steps`` / ``max_run_steps`` in frames (video) or time steps (series): a run of ``r``
  positions covers ``size + stride·(r − 1)`` of them (:class:`Span`; video: size = stride = tubelet).
- ``spread``: mean, over the on positions, of the fraction of that position's tokens that are on
  (video: of the ``h × w`` tokens, i.e. how much of the frame; series: of the channels).
- top items: the ``top_items`` items with the largest per-item maximum code, best first.

Everything is gathered in one streaming pass (:func:`scan_features`) whose memory is ``O(K·P)``;
a second pass (:func:`gather_activations`) reads only the tokens of the reported items.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import torch
from safetensors import safe_open

from datamodules.features.shards import FeatureShards, read_index


@dataclass(frozen=True)
class Layout:
    """Which metadata columns hold the item, its temporal position and the place within a position."""

    kind: str  # "video" or "series"
    item: int
    position: int
    sites: tuple[int, ...]  # (h, w) for video, (channel,) for series
    label: int | None

    @classmethod
    def from_names(cls, names: list[str]) -> "Layout":
        col = {name: i for i, name in enumerate(names)}
        label = col.get("label")
        if {"clip", "t", "h", "w"} <= col.keys():
            return cls("video", col["clip"], col["t"], (col["h"], col["w"]), label)
        if {"series", "channel", "patch"} <= col.keys():
            return cls("series", col["series"], col["patch"], (col["channel"],), label)
        raise ValueError(f"metadata {names} is neither video (clip, t, h, w, label) nor series "
                         "(series, channel, patch, label); was the folder written by `vtrep extract`?")


@dataclass(frozen=True)
class Span:
    """Position ``p`` covers steps ``[offset + p·stride, offset + p·stride + size)`` of its item."""

    size: int
    stride: int
    offset: int = 0
    unit: str = "frames"

    def steps(self, runs: float) -> float:
        """Frames / steps covered by a run of ``runs`` consecutive positions (0 for no run)."""
        return 0.0 if runs <= 0 else float(self.size + self.stride * (runs - 1))

    def window(self, position: int) -> tuple[int, int]:
        start = self.offset + position * self.stride
        return start, start + self.size


def item_span(layout: Layout, num_positions: int, length: int, encoder_config: dict | None = None) -> Span:
    """How positions map to frames / steps, for items of ``length`` frames (video) or steps (series).

    Video: tubelet = frames / positions. Series: the encoder's ``patch_length`` and ``stride`` with
    PatchTST's left trim (patches end at the last step); an encoder without them has one token per
    step. Without the encoder's config, non-overlapping patches of ``length // P`` are assumed.
    """
    if layout.kind == "video":
        if length % num_positions:
            raise ValueError(f"clips of {length} frames do not split into {num_positions} temporal tokens")
        return Span(length // num_positions, length // num_positions, 0, "frames")
    if (encoder_config is not None and "patch_length" not in encoder_config) or num_positions == length:
        return Span(1, 1, 0, "steps")
    if encoder_config is not None:
        size, stride = int(encoder_config["patch_length"]), int(encoder_config["stride"])
    else:
        size = stride = max(1, length // num_positions)
    return Span(size, stride, length - (size + stride * (num_positions - 1)), "steps")


def steps_activation(values: torch.Tensor, span: Span, length: int) -> torch.Tensor:
    """Per-position values ``(P,)`` → per-step ``(length,)``: the max over the positions covering each step."""
    out = torch.zeros(length)
    for p in range(len(values)):
        start, end = span.window(p)
        start, end = max(start, 0), min(end, length)
        out[start:end] = torch.maximum(out[start:end], values[p])
    return out


@dataclass
class LatentStats:
    """The statistics of one latent (definitions in the module docstring)."""

    latent: int
    token_rate: float
    item_fraction: float
    items_on: int
    mean_on: float
    max_on: float
    spread: float
    where: list[float]
    run_hist: list[int]
    mean_run_tokens: float
    max_run_tokens: int
    mean_run_steps: float
    max_run_steps: float
    top_items: list[tuple[int, int, float]] = field(default_factory=list)  # (item, label, max code)


class LatentAccumulator:
    """Running per-latent statistics and top items; feed it chunks of whole items in item order.

    Args:
        num_latents: ``K``.
        top_items: items kept per latent (by their largest code).
        layout: the metadata columns.
    """

    def __init__(self, num_latents: int, top_items: int, layout: Layout) -> None:
        if top_items < 1:
            raise ValueError(f"top_items must be >= 1, got {top_items}")
        k = self.num_latents = num_latents
        self.layout, self.top_n = layout, top_items
        self.tokens = self.items = 0
        self.last_item = -1
        self.fires, self.items_on = torch.zeros(k, dtype=torch.long), torch.zeros(k, dtype=torch.long)
        self.act_sum, self.spread_sum = torch.zeros(k, dtype=torch.float64), torch.zeros(k, dtype=torch.float64)
        self.act_max = torch.zeros(k)
        self.where = torch.zeros(k, 0, dtype=torch.long)  # grows to P as positions appear
        self.run_hist = torch.zeros(k, 0, dtype=torch.long)
        self.top_value = torch.full((k, top_items), -math.inf)
        self.top_item = torch.full((k, top_items), -1, dtype=torch.long)
        self.top_label = torch.full((k, top_items), -1, dtype=torch.long)  # kept with the items: no per-item table

    @property
    def num_positions(self) -> int:
        return self.where.shape[1]

    def _grow(self, positions: int) -> None:
        extra = positions - self.num_positions
        if extra > 0:
            pad = torch.zeros(self.num_latents, extra, dtype=torch.long)
            self.where, self.run_hist = torch.cat([self.where, pad], 1), torch.cat([self.run_hist, pad], 1)

    def update(self, rows: torch.Tensor, latents: torch.Tensor, values: torch.Tensor, meta: torch.Tensor) -> None:
        """Add the on codes ``values (m,)`` at ``(rows, latents)`` of a chunk with metadata ``meta (n, M)``.

        The chunk must hold whole items, each later than every item seen before (extraction order).
        """
        lay, k = self.layout, self.num_latents
        if len(meta) == 0:
            return
        if int(meta[:, lay.item].min()) <= self.last_item:
            raise ValueError(f"tokens of item {int(meta[:, lay.item].min())} are not contiguous or not in order; "
                             "concept reports need a folder written in item order by `vtrep extract`")
        if int(meta[:, lay.position].min()) < 0:
            raise ValueError("negative temporal positions in the metadata")
        if len(latents) and (int(latents.max()) >= k or float(values.min()) <= 0):
            raise ValueError("update takes on codes only: latents < K and values > 0")
        item_ids, item_of_row = torch.unique(meta[:, lay.item], return_inverse=True)
        self.last_item = int(item_ids[-1])
        self.tokens, self.items = self.tokens + len(meta), self.items + len(item_ids)
        labels = torch.full((len(item_ids),), -1, dtype=torch.long)
        if lay.label is not None:  # every token of an item carries the item's label
            labels.scatter_(0, item_of_row, meta[:, lay.label])
        self._grow(int(meta[:, lay.position].max()) + 1)
        self.fires += torch.bincount(latents, minlength=k)
        self.act_sum += torch.bincount(latents, weights=values.double(), minlength=k)
        self.act_max = self.act_max.scatter_reduce(0, latents, values.float(), "amax")
        event_item = item_of_row[rows]
        pairs, pair_of_event = torch.unique(event_item * k + latents, return_inverse=True)
        pair_max = torch.zeros(len(pairs)).scatter_reduce(0, pair_of_event, values.float(), "amax")
        self.items_on += torch.bincount(pairs % k, minlength=k)
        self._merge_top(pairs % k, item_ids[pairs // k], labels[pairs // k], pair_max)
        self._update_positions(item_of_row, meta[:, lay.position], event_item, latents, meta[rows, lay.position])

    def _update_positions(self, item_of_row, position, event_item, latents, event_position) -> None:
        k, p = self.num_latents, self.num_positions
        tokens_at = torch.bincount(item_of_row * p + position)  # tokens per (item, position)
        cells, on_tokens = torch.unique((event_item * k + latents) * p + event_position, return_counts=True)
        cell_latent, cell_position, cell_item = (cells // p) % k, cells % p, cells // (p * k)
        self.where += torch.bincount(cell_latent * p + cell_position, minlength=k * p).view(k, p)
        self.spread_sum += torch.bincount(cell_latent, weights=(on_tokens / tokens_at[cell_item * p + cell_position])
                                          .double(), minlength=k)
        # cells are sorted, so a run is a stretch of consecutive keys within one (item, latent)
        start = torch.ones(len(cells), dtype=torch.bool)
        start[1:] = (cells[1:] != cells[:-1] + 1) | (cells[1:] // p != cells[:-1] // p)
        run_length = torch.bincount(torch.cumsum(start, 0) - 1)
        self.run_hist += torch.bincount(cell_latent[start] * p + run_length - 1, minlength=k * p).view(k, p)

    def _merge_top(self, latents: torch.Tensor, items: torch.Tensor, labels: torch.Tensor,
                   values: torch.Tensor) -> None:
        """Keep the ``top_n`` largest (value, item, label) per latent among the kept ones and the new ones."""
        k, n = self.num_latents, self.top_n
        lat = torch.cat([torch.arange(k).repeat_interleave(n), latents])
        item = torch.cat([self.top_item.flatten(), items])
        label = torch.cat([self.top_label.flatten(), labels])
        value = torch.cat([self.top_value.flatten(), values])
        order = torch.argsort(value, descending=True, stable=True)  # ties: the earlier item first
        order = order[torch.argsort(lat[order], stable=True)]
        lat, item, label, value = lat[order], item[order], label[order], value[order]
        counts = torch.bincount(lat, minlength=k)
        rank = torch.arange(len(lat)) - (torch.cumsum(counts, 0) - counts)[lat]
        keep = rank < n
        self.top_value[lat[keep], rank[keep]] = value[keep]
        self.top_item[lat[keep], rank[keep]] = item[keep]
        self.top_label[lat[keep], rank[keep]] = label[keep]

    def stats(self, latent: int, span: Span) -> LatentStats:
        """The :class:`LatentStats` of one latent; ``span`` converts run lengths to frames / steps."""
        j = check_latents([latent], self.num_latents)[0]
        fires, runs = int(self.fires[j]), self.run_hist[j]
        lengths = torch.arange(1, len(runs) + 1)
        run_count, on_positions = int(runs.sum()), int(self.where[j].sum())
        mean_run = float((runs * lengths).sum()) / run_count if run_count else 0.0
        max_run = int(lengths[runs > 0].max()) if run_count else 0
        top = [(int(i), int(lab), float(v))
               for i, lab, v in zip(self.top_item[j], self.top_label[j], self.top_value[j]) if i >= 0]
        return LatentStats(
            latent=j, token_rate=fires / max(self.tokens, 1), item_fraction=int(self.items_on[j]) / max(self.items, 1),
            items_on=int(self.items_on[j]), mean_on=float(self.act_sum[j]) / fires if fires else 0.0,
            max_on=float(self.act_max[j]), spread=float(self.spread_sum[j]) / on_positions if on_positions else 0.0,
            where=(self.where[j].double() / max(on_positions, 1)).tolist(), run_hist=runs.tolist(),
            mean_run_tokens=mean_run, max_run_tokens=max_run, mean_run_steps=span.steps(mean_run),
            max_run_steps=span.steps(max_run), top_items=top)


def check_latents(latents: list[int], num_latents: int) -> list[int]:
    """Validate latent indices against ``K`` (duplicates dropped, order kept)."""
    bad = [j for j in latents if not isinstance(j, int) or isinstance(j, bool) or not 0 <= j < num_latents]
    if bad:
        raise ValueError(f"latent {bad[0]!r} is not an index of this SAE's {num_latents} latents "
                         f"(valid: 0 .. {num_latents - 1})")
    return list(dict.fromkeys(latents))


SELECTION_RULE = ("latents on in at least {min_item_fraction:.0%} of the items (and at least 2) and on at most "
                  "{max_token_rate:.0%} of the tokens (denser ones fire on almost everything and say little), "
                  "ranked by mean activation when on, highest first")


def select_latents(acc: LatentAccumulator, count: int, min_item_fraction: float = 0.01,
                   max_token_rate: float = 0.1) -> tuple[list[int], str]:
    """The ``count`` latents to report when none are named, and a sentence saying how they were chosen.

    Rule: latents on in ≥ ``min_item_fraction`` of the items (and ≥ 2 items, so a latent shows a
    pattern rather than one example) and on ≤ ``max_token_rate`` of the tokens (dense latents), ranked
    by mean activation when on — strong, recurring, selective concepts. When fewer qualify, the
    remaining places go to the other latents that fire at all, by the same ranking (the sentence says so).
    """
    if count < 1:
        raise ValueError(f"top_latents must be >= 1, got {count}")
    token_rate = acc.fires / max(acc.tokens, 1)
    mean_on = (acc.act_sum / acc.fires.clamp_min(1)).float()
    need = max(2, math.ceil(min_item_fraction * acc.items))
    eligible = (acc.items_on >= need) & (token_rate <= max_token_rate)
    ranked = sorted(range(acc.num_latents), key=lambda j: (-float(mean_on[j]), j))
    chosen = [j for j in ranked if eligible[j]][:count]
    note = SELECTION_RULE.format(min_item_fraction=min_item_fraction, max_token_rate=max_token_rate)
    if len(chosen) < count:
        extra = [j for j in ranked if not eligible[j] and acc.fires[j] > 0][:count - len(chosen)]
        if extra:
            note += f"; only {len(chosen)} qualified, so other firing latents fill the list: {extra}"
        chosen += extra
    if not chosen:
        raise ValueError("no latent fires on these features; nothing to report")
    return chosen, note


def encode_on(sae, features: torch.Tensor, batch_size: int, device: str = "cpu"):
    """On codes of ``features (n, d)``, encoded ``batch_size`` rows at a time: ``rows, latents, values (m,)``."""
    rows, latents, values = [], [], []
    with torch.no_grad():
        for start in range(0, len(features), batch_size):
            codes = sae.encode(features[start:start + batch_size].to(device).float()).cpu()
            r, j = (codes > 0).nonzero(as_tuple=True)
            rows.append(r + start), latents.append(j), values.append(codes[r, j])
    if not rows:
        return torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), torch.zeros(0)
    return torch.cat(rows), torch.cat(latents), torch.cat(values)


def check_width(sae, root: str | os.PathLike) -> dict:
    """The folder's index, after checking its feature width against the SAE's ``d_in``."""
    index = read_index(root)
    if int(index["width"]) != sae.d_in:
        raise ValueError(f"the features in {root} have width {index['width']} but the SAE expects d_in={sae.d_in}; "
                         "was it trained on another encoder's features?")
    return index


def whole_item_chunks(root: str | os.PathLike, batch_size: int, item_column: int) -> Iterator[tuple]:
    """``(features (n, d), meta (n, M))`` in folder order, cut so no item is split between chunks."""
    features = meta = None
    for batch in FeatureShards(root, batch_size=batch_size, shuffle=False):
        f, m = batch["features"], batch["meta"]
        features, meta = (f, m) if features is None else (torch.cat([features, f]), torch.cat([meta, m]))
        others = (meta[:, item_column] != meta[-1, item_column]).nonzero()
        cut = int(others.max()) + 1 if len(others) else 0  # the last item may go on in the next batch
        if cut:
            yield features[:cut], meta[:cut]
            features, meta = features[cut:], meta[cut:]
    if features is not None and len(features):
        yield features, meta


def scan_features(sae, root: str | os.PathLike, top_items: int = 6, batch_size: int = 8192,
                  device: str = "cpu") -> LatentAccumulator:
    """First pass: every latent's statistics and top items over the whole folder."""
    index = check_width(sae, root)
    acc = LatentAccumulator(sae.num_latents, top_items, Layout.from_names(index["meta"]))
    for features, meta in whole_item_chunks(root, batch_size, acc.layout.item):
        acc.update(*encode_on(sae, features, batch_size, device), meta)
    return acc


@dataclass
class ItemActivations:
    """The selected latents' codes on every token of one item: ``cells (n, 1 + S)`` as (position, sites...)
    and ``values (n, L)`` in the order of the selected latents."""

    cells: torch.Tensor
    values: torch.Tensor

    def grid(self, column: int) -> torch.Tensor:
        """One latent's codes as a dense grid ``(P, *sites)``: video ``(t, h, w)``, series ``(patch, channel)``."""
        cells = self.cells.clamp_min(0)  # step tokens have channel −1
        shape = (cells.max(dim=0).values + 1).tolist()
        out = torch.zeros(shape)
        out[tuple(cells.t())] = self.values[:, column].float()
        return out


def gather_activations(sae, root: str | os.PathLike, latents: list[int], items: list[int],
                       batch_size: int = 8192, device: str = "cpu") -> dict[int, ItemActivations]:
    """Second pass: the codes of ``latents`` on every token of ``items``; shards without them are skipped."""
    index, root = check_width(sae, root), Path(root)
    lay = Layout.from_names(index["meta"])
    wanted, parts = torch.tensor(sorted(set(items)), dtype=torch.long), []
    for shard in index["shards"]:
        with safe_open(str(root / shard["file"]), framework="pt") as handle:
            meta = handle.get_tensor("meta")
            rows = torch.isin(meta[:, lay.item], wanted).nonzero().flatten()
            if not len(rows):
                continue
            lo, hi = int(rows.min()), int(rows.max()) + 1  # items are contiguous: read only their stretch
            features = handle.get_slice("features")[lo:hi][rows - lo]
        meta = meta[rows]
        with torch.no_grad():
            codes = torch.cat([sae.encode(features[s:s + batch_size].to(device).float())[:, latents].cpu()
                               for s in range(0, len(features), batch_size)])
        parts.append((meta, codes))
    meta = torch.cat([m for m, _ in parts]) if parts else torch.zeros(0, len(index["meta"]), dtype=torch.long)
    codes = torch.cat([c for _, c in parts]) if parts else torch.zeros(0, len(latents))
    out = {}
    for item in wanted.tolist():
        mine = meta[:, lay.item] == item
        if mine.any():
            out[item] = ItemActivations(meta[mine][:, [lay.position, *lay.sites]], codes[mine])
    return out
