"""Temporal concept metrics of every latent of an SAE over a feature folder written by ``vtrep extract``.

Definitions and thresholds are in :mod:`vtrep.sae.metrics.temporal` and :mod:`vtrep.sae.metrics.sparse_probing`.
Two passes:

1. over the folder's tokens (streamed in chunks of whole items): temporal coherence, position η², each
   latent's token rate (live: it fires on at least one token), and per-item mean codes and raw features;
2. over the clips / series themselves (``source.json`` leads back to them and to the encoder, at random
   init when the folder was extracted with ``random_init``): up to ``max_items`` items, evenly spaced through
   the split, re-encoded as they are, with motion removed and with order removed, for the static vs dynamic
   scores (the encoder runs here: this pass costs three encoder passes per item).

k-sparse probing splits the folder's items (stratified, seeded) into ``1 − test_fraction`` training and
``test_fraction`` held-out items; the SAE saw the training split's tokens, never their labels.
Shares in the summary are over the *live* latents.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from vtrep.eval.encoders import encoder_kind, load_encoder, random_copy
from vtrep.eval.extract import series_tokens
from vtrep.eval.feature_source import SourceItems, read_source
from vtrep.reports.concepts import Layout, check_width, whole_item_chunks
from vtrep.sae.metrics.sparse_probing import ItemMeans, sparse_probing, stratified_split
from vtrep.sae.metrics.temporal import (
    CLASSES,
    DYNAMIC,
    POSITION_CODED,
    STATIC,
    CoherenceAccumulator,
    PositionAccumulator,
    freeze_motion,
    response_scores,
    shuffle_order,
    temporal_classes,
)


def encode_codes(sae, x: torch.Tensor, batch_size: int, device: str = "cpu") -> torch.Tensor:
    """Codes ``(n, K)`` of ``x (n, d)``, ``batch_size`` rows at a time."""
    with torch.no_grad():
        return torch.cat([sae.encode(x[s:s + batch_size].to(device).float()).cpu()
                          for s in range(0, len(x), batch_size)])


def token_pass(sae, root, batch_size: int = 8192, device: str = "cpu") -> dict[str, Any]:
    """First pass over the folder's tokens: coherence, η², token rates and per-item means (codes and raw)."""
    index = check_width(sae, root)
    lay = Layout.from_names(index["meta"])
    k = sae.num_latents
    coherence, position = CoherenceAccumulator(k), PositionAccumulator(k)
    codes_mean, raw_mean = ItemMeans(k), ItemMeans(int(index["width"]))
    fires, tokens = torch.zeros(k, dtype=torch.float64), 0
    for features, meta in whole_item_chunks(root, batch_size, lay.item):
        codes = encode_codes(sae, features, batch_size, device)
        item, label = meta[:, lay.item], None if lay.label is None else meta[:, lay.label]
        coherence.update(codes, item, meta[:, lay.position], meta[:, list(lay.sites)])
        position.update(codes, meta[:, [lay.position, *lay.sites]])
        codes_mean.update(codes, item, label)
        raw_mean.update(features.float(), item, label)
        fires += (codes != 0).sum(0).double()
        tokens += len(codes)
    return {"kind": lay.kind, "coherence": coherence.result(), "eta2": position.result(),
            "token_rate": (fires / max(tokens, 1)).float(), "tokens": tokens, "codes": codes_mean.result(),
            "raw": raw_mean.result()}


def source_encoder(source: dict) -> tuple[torch.nn.Module, bool]:
    """The encoder a folder was extracted with (its random copy when extracted with ``random_init``)."""
    module, revin = load_encoder(source["encoder"], source.get("fit_config"))
    if source.get("random_init"):
        module = random_copy(module, int(source.get("seed") or 0))
    return module, revin


def _tokens(encoder, kind: str, revin: bool, x: torch.Tensor) -> torch.Tensor:
    if kind == "video":
        return encoder.forward_features(x)
    return series_tokens(encoder, x.float(), revin)[0]


def chosen_items(items: SourceItems, max_items: int | None) -> list[int]:
    """Up to ``max_items`` item numbers evenly spaced through the split, skipped ones left out."""
    usable = [i for i in range(len(items)) if i not in items.skipped]
    if max_items is None or max_items >= len(usable):
        return usable
    picks = torch.linspace(0, len(usable) - 1, max_items).round().long().unique().tolist()
    return [usable[i] for i in picks]


@torch.no_grad()
def perturbation_means(sae, encoder, kind: str, revin: bool, clips, block: int = 1, seed: int = 0,
                       batch_size: int = 8192, device: str = "cpu") -> dict[str, torch.Tensor]:
    """Each latent's mean |code| ``(K,)`` over all tokens of ``clips`` (batches ``(B, C, T, ...)``) as they are
    (``original``), with motion removed (``frozen``) and with order removed (``shuffled``)."""
    generator = torch.Generator().manual_seed(seed)
    encoder = encoder.eval().to(device)
    sums = {name: torch.zeros(sae.num_latents, dtype=torch.float64) for name in ("original", "frozen", "shuffled")}
    count = 0
    for x in clips:
        x = x.to(device)
        views = {"original": x, "frozen": freeze_motion(x), "shuffled": shuffle_order(x, generator, block=block)}
        for name, view in views.items():
            tokens = _tokens(encoder, kind, revin, view)
            codes = encode_codes(sae, tokens.reshape(-1, tokens.shape[-1]), batch_size, device)
            sums[name] += codes.abs().sum(0).double()
        count += tokens.shape[0] * tokens.shape[1]
    return {name: (value / max(count, 1)).float() for name, value in sums.items()}


def _clip_batches(items: SourceItems, numbers: list[int], batch: int):
    for start in range(0, len(numbers), batch):
        yield torch.stack([torch.as_tensor(items[i][0]) for i in numbers[start:start + batch]])


def probing(tokens: dict, test_fraction: float, seed: int) -> dict[str, Any] | None:
    """k-sparse probing of pooled codes and of pooled raw features; None when the items have no labels."""
    _, codes, labels = tokens["codes"]
    _, raw, _ = tokens["raw"]
    keep = labels >= 0
    if keep.sum() < 4 or len(torch.unique(labels[keep])) < 2:
        return None
    codes, raw, labels = codes[keep], raw[keep], labels[keep]
    train, test = stratified_split(labels, test_fraction, seed)
    try:
        return {"sae": sparse_probing(codes[train], labels[train], codes[test], labels[test]),
                "raw": sparse_probing(raw[train], labels[train], raw[test], labels[test], dense=True),
                "train_items": len(train), "test_items": len(test)}
    except ValueError:  # too few items: no class has members in both splits
        return None


def latent_metrics(sae, features: str, max_items: int | None = 256, clip_batch: int = 16, batch_size: int = 8192,
                   test_fraction: float = 0.3, seed: int = 0, device: str = "cpu") -> tuple[dict, dict]:
    """``(per_latent, summary)`` of ``sae`` (a loaded SAE) over the folder ``features``."""
    sae = sae.eval().to(device)
    tokens = token_pass(sae, features, batch_size, device)
    source = read_source(features)
    encoder, revin = source_encoder(source)
    kind = encoder_kind(encoder)
    items = SourceItems(features)
    numbers = chosen_items(items, max_items)
    block = int(source.get("stride") or 1) if kind == "series" else 1
    means = perturbation_means(sae, encoder, kind, revin, _clip_batches(items, numbers, clip_batch), block, seed,
                               batch_size, device)
    scores = response_scores(means["original"], means["frozen"], means["shuffled"])
    per_latent = {"token_rate": tokens["token_rate"], "coherence": tokens["coherence"], "eta2": tokens["eta2"],
                  **{f"mean_abs_{name}": value for name, value in means.items()}, **scores}
    per_latent = {name: [_number(v) for v in value.tolist()] for name, value in per_latent.items()}
    per_latent["class"] = temporal_classes(scores["dynamic_score"])
    per_latent["position_coded"] = [bool(v >= POSITION_CODED) for v in tokens["eta2"].tolist()]
    per_latent["order_sensitive"] = [bool(v >= DYNAMIC) for v in scores["order_score"].tolist()]
    summary = summarise(per_latent, tokens, source, probing(tokens, test_fraction, seed), len(numbers))
    return per_latent, summary


def _number(value: float) -> float | None:
    return None if math.isnan(value) else value


def _quantiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "q25": None, "q75": None}
    q = torch.quantile(torch.tensor(values), torch.tensor([0.25, 0.5, 0.75])).tolist()
    return {"median": q[1], "q25": q[0], "q75": q[2]}


def summarise(per_latent: dict, tokens: dict, source: dict, probe: dict | None, perturbed: int) -> dict[str, Any]:
    """Class shares over the live latents, coherence / η² quantiles, probing scores, and what was measured."""
    live = [k for k, rate in enumerate(per_latent["token_rate"]) if rate and rate > 0]
    n = max(len(live), 1)
    share = {name: sum(per_latent["class"][k] == name for k in live) / n for name in CLASSES}
    share["position_coded"] = sum(per_latent["position_coded"][k] for k in live) / n
    share["order_sensitive"] = sum(per_latent["order_sensitive"][k] for k in live) / n
    defined = [per_latent["coherence"][k] for k in live if per_latent["coherence"][k] is not None]
    etas = [per_latent["eta2"][k] for k in live if per_latent["eta2"][k] is not None]
    return {"kind": tokens["kind"], "encoder": source.get("encoder"), "random_init": bool(source.get("random_init")),
            "latents": len(per_latent["class"]), "live": len(live), "tokens": tokens["tokens"],
            "items": len(tokens["codes"][0]), "perturbed_items": perturbed, "share_of_live": share,
            "dynamic_not_position_coded": sum(per_latent["class"][k] == "dynamic" and not per_latent["position_coded"][k]
                                              for k in live),
            "coherence": _quantiles(defined), "eta2": _quantiles(etas), "probing": probe,
            "thresholds": {"dynamic": DYNAMIC, "static": STATIC, "position_coded": POSITION_CODED}}
