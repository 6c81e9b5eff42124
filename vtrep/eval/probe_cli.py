"""``vtrep probe``: classify with a frozen encoder — video or series, from an exported folder or a fit checkpoint.

The encoder is always the one the method evaluates (``vtrep.eval.encoders.load_encoder``: an exported
``encoder`` folder, or a ``.ckpt`` with its fit's config, whose task names it — TS2Vec's weight average).
Protocols: ``linear`` (MAE's probe; the video default), ``svm`` (TS2Vec's; the series default),
``logistic``, ``knn`` on pooled features, and ``attentive`` (V-JEPA's probe on the frozen tokens of clips).
With ``compare_random`` the same architecture at random initialisation is probed beside it. With
``test_views`` a video's test score is the mean over its clips × crops views (VideoMAE's multi-view test,
:mod:`vtrep.eval.multiview`).
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Literal

import lightning as L
import torch

from vtrep.checks import positive, positive_int
from vtrep.errors import UsageError
from vtrep.eval.encoders import encoder_kind, load_encoder, random_copy
from vtrep.eval.geometry import with_encoder_geometry
from vtrep.eval.multiview import ViewCounts
from vtrep.eval.series_probe import probe_series
from vtrep.eval.video_probe import check_folds, probe_video
from vtrep.io.atomic_write import atomic_write

Protocol = Literal["linear", "svm", "logistic", "knn", "attentive"]


def protocol_settings(protocol: str) -> list[str]:
    """The names ``protocol_options`` may set for ``protocol``: the keyword settings of the function that trains it
    (``svm`` and ``logistic`` choose their C themselves and take none)."""
    from vtrep.probes.attentive_probe import fit_attentive_probe
    from vtrep.probes.knn import knn_accuracy
    from vtrep.probes.linear_probe import fit_linear_probe

    trains = {"linear": fit_linear_probe, "knn": knn_accuracy, "attentive": fit_attentive_probe}.get(protocol)
    if trains is None:
        return []
    parameters = inspect.signature(trains).parameters.values()
    return [p.name for p in parameters if p.default is not p.empty and p.name not in ("seed", "device")]


def check_protocol_options(protocol: str, options: dict) -> None:
    """Refuse a setting ``protocol`` does not take before any feature is computed."""
    unknown = sorted(set(options) - set(protocol_settings(protocol)))
    if unknown:
        raise UsageError(f"protocol_options {unknown} are not settings of protocol {protocol!r}; it takes "
                         f"{protocol_settings(protocol) or 'none'}")


def probe_module(encoder: torch.nn.Module, revin: bool, data: L.LightningDataModule, protocol: str, seed: int,
                 options: dict, folds: int | None = None, test_views: ViewCounts | None = None) -> dict:
    torch.manual_seed(seed)
    if encoder_kind(encoder) == "video":
        return probe_video(encoder, with_encoder_geometry(encoder, data), protocol, seed, folds, test_views,
                           **options)
    if test_views is not None and test_views.count > 1:
        raise UsageError("test_views is for video clips; a series set is scored one series at a time")
    if folds is not None:
        raise UsageError("folds is for video folders; a series set is probed on its own train / test split")
    if protocol == "attentive":
        raise UsageError("protocol='attentive' probes clip tokens; for series use svm, logistic, knn or linear")
    return probe_series(encoder, data, protocol, revin=revin, seed=seed, **options)


def probe(encoder: str, data: L.LightningDataModule, protocol: Protocol | None = None, fit_config: str | None = None,
          compare_random: bool = True, folds: int | None = None, epochs: int = 100, base_lr: float = 0.1,
          probe_batch_size: int = 64, protocol_options: dict | None = None,
          test_views: ViewCounts = ViewCounts(), seed: int = 0, output: str | None = None) -> dict:
    """Accuracy of a frozen encoder under a probing protocol, and of the same encoder at random init.

    Args:
        encoder: the ``encoder`` folder ``vtrep fit`` exports, or a fit's ``.ckpt`` (then give ``fit_config``).
        data: a video datamodule with ``feature_dataloader`` (train / val clips) or a series classification
            datamodule (train / test series), e.g. ``configs/data/ucr.yaml``.
        protocol: ``linear``, ``svm``, ``logistic``, ``knn`` or ``attentive``; default ``linear`` for video
            encoders and ``svm`` (TS2Vec's protocol) for series encoders.
        fit_config: the ``config.yaml`` of the fit whose checkpoint ``encoder`` names.
        compare_random: also probe the same architecture at random initialisation.
        folds: video only: k-fold cross-validation over all the datamodule's clips (train and val pooled;
            stratified folds; mean ± std of the fold accuracies) instead of its one train / val split.
        epochs: training epochs of the linear probe (MAE's protocol) over cached features.
        base_lr: linear-probe learning rate per 256 samples.
        probe_batch_size: linear-probe batch size.
        protocol_options: further settings of the protocol, e.g. for ``attentive``
            ``{lrs: [1e-3], weight_decays: [0.01], self_attention_blocks: 1}`` (one probe, one block: a CPU-sized
            run; the default is V-JEPA 2's 20-probe grid over 3 + 1 blocks), for ``knn`` ``{k: 20}``.
        test_views: video only: views per test video, e.g. ``{clips: 5, crops: 3}`` (VideoMAE's Kinetics
            test; SSv2: ``{clips: 2, crops: 3}``): clips evenly spaced in time, crops evenly spaced along the
            long side; the probe trains on one centre clip per video as with the default 1 × 1, and a test
            video's score is the mean of its views' probabilities (``svm`` gives none and is refused). With
            ``folds`` a held-out video's views are only ever tested. Recorded in the results.
        seed: seed of the probe (and of the random-init encoder).
        output: optional JSON file for the results (written atomically).
    """
    if folds is not None:
        check_folds(folds)
    positive_int("epochs", epochs)
    positive("base_lr", base_lr)
    positive_int("probe_batch_size", probe_batch_size)
    module, revin = load_encoder(encoder, fit_config)
    protocol = protocol or ("linear" if encoder_kind(module) == "video" else "svm")
    options = dict(epochs=epochs, base_lr=base_lr, batch_size=probe_batch_size) if protocol == "linear" else {}
    options.update(protocol_options or {})
    check_protocol_options(protocol, options)
    views = test_views if test_views.count > 1 else None
    results = {"pretrained": probe_module(module, revin, data, protocol, seed, options, folds, views)}
    if compare_random:
        results["random_init"] = probe_module(random_copy(module, seed), revin, data, protocol, seed, options, folds,
                                              views)
    for name, res in results.items():
        where = (f"± {100 * res['accuracy_std']:.1f}, {folds}-fold over {res['num_train']} items" if folds else
                 f"({res['num_train']} train / {res['num_test']} test items)")
        if views:
            where += f", {views.clips} clips x {views.crops} crops per test video"
        print(f"{protocol} probe accuracy [{name:>11}]: {100 * res['accuracy']:.1f}% {where}")
    if output:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(Path(output), lambda p: p.write_text(json.dumps(results, indent=2)))
    return results


def probe_cli(args: list[str] | None = None) -> dict:
    from vtrep.cli_messages import run_command

    return run_command(probe, args)
