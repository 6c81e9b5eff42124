"""Multi-view testing for ``vtrep probe`` (VideoMAE's protocol): a test video is scored as ``clips × crops`` views.

The views' geometry is the datamodule's (``feature_dataloader(split, clips=, crops=)``: clips evenly spaced
in time, crops evenly spaced along the long side after the short side is resized to ``img_size``; see
:func:`datamodules.video.sampling.view_starts` and :func:`datamodules.video.transforms.view_crop_boxes`).
Here each view is encoded on its own, the trained probe gives class probabilities per view, and a video's
score is their arithmetic mean (:func:`vtrep.probes.attentive_probe.predict_views`); its class is the argmax.

Per-view probabilities, by protocol:

* ``linear``, ``attentive``: the softmax of the probe's logits;
* ``logistic``: the model's predicted probabilities (a class missing from the training split gets 0);
* ``knn``: DINO's weighted votes normalised to sum to 1 (their argmax is the single-view prediction);
* ``svm``: refused. TS2Vec's SVC gives no probabilities, and a Platt-scaled SVC would be another model.

Deviation from VideoMAE, which fine-tunes on augmented clips and tests on the views: the probe is trained
exactly as with one view, on cached unaugmented centre clips of the training videos (one per video), and
only testing sees the views. V-JEPA instead concatenates a video's clips into one token sequence per spatial
view; not done here, as the probe never sees such a sequence while training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from vtrep.checks import positive_int
from vtrep.errors import UsageError
from vtrep.io.batches import batch_input_and_label

Scorer = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class ViewCounts:
    """Views per test video: ``clips`` temporal clips × ``crops`` spatial crops (1 × 1: the centre clip only).

    VideoMAE tests Kinetics-400 with 5 × 3 and Something-Something v2 with 2 × 3.
    """

    clips: int = 1
    crops: int = 1

    def __post_init__(self) -> None:
        positive_int("test_views.clips", self.clips)
        positive_int("test_views.crops", self.crops)

    @property
    def count(self) -> int:
        return self.clips * self.crops

    def record(self) -> dict:
        return {"clips": self.clips, "crops": self.crops}


def check_view_protocol(protocol: str, views: ViewCounts) -> None:
    """Refuse, before any clip is decoded, a protocol that cannot average per-view probabilities."""
    if views.count > 1 and protocol == "svm":
        raise UsageError(f"test_views={views.clips}x{views.crops} averages per-view class probabilities, which "
                         f"protocol='svm' (TS2Vec's SVC) does not give; use linear, logistic, knn or attentive, "
                         f"or test_views 1x1")


@torch.no_grad()
def view_features(encoder: nn.Module, loader, tokens: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-view pooled features ``(n, views, D)`` (or tokens ``(n, views, N, D)``) and labels ``(n,)``.

    ``loader`` gives ``(B, views, C, T, H, W)`` batches; each view is encoded as its own clip.
    """
    encoder = encoder.eval()
    device = next(encoder.parameters()).device
    features, labels = [], []
    for batch in loader:
        video, label = batch_input_and_label(batch, "video")
        if label is None:
            raise ValueError("the probe needs labelled clips: the feature loader gave batches without labels")
        if video.ndim != 6:
            raise ValueError(f"a multi-view loader gives (B, views, C, T, H, W) batches, got {tuple(video.shape)}")
        clips = video.flatten(0, 1).to(device)
        encoded = encoder.forward_features(clips) if tokens else encoder(clips)
        features.append(encoded.float().cpu().unflatten(0, tuple(video.shape[:2])))
        labels.append(label.long())
    if not features:
        raise ValueError("the feature loader yielded no videos")
    return torch.cat(features), torch.cat(labels)


def _sklearn_log_proba(model, num_classes: int, view: torch.Tensor) -> torch.Tensor:
    proba = torch.zeros(view.shape[0], num_classes, dtype=torch.float64)
    proba[:, torch.as_tensor(model.classes_)] = torch.from_numpy(model.predict_proba(view.numpy()))
    return proba.log()


def _attentive_scorer(train_x: torch.Tensor, train_y: torch.Tensor, num_classes: int, seed: int,
                      options: dict) -> tuple[Scorer, dict]:
    from vtrep.eval.token_probe import probe_heads
    from vtrep.probes.attentive_probe import fit_attentive_probe

    options = {"num_heads": probe_heads(train_x.shape[-1]), **options}
    # nothing to score yet: the test views are scored below, view by view
    res = fit_attentive_probe(train_x, train_y, train_x[:0], train_y[:0], num_classes, seed=seed, **options)
    probe, device = res.probe.eval(), next(res.probe.parameters()).device
    return (lambda view: probe(view.to(device, torch.float32))), {
        "train_accuracy": res.train_top1, "lr": res.lr, "weight_decay": res.weight_decay,
        "num_holdout": res.num_holdout}


def view_scorer(protocol: str, train_x: torch.Tensor, train_y: torch.Tensor, num_classes: int, seed: int,
                options: dict) -> tuple[Scorer, dict]:
    """``protocol`` fitted on one view per training video: a map from a view batch to logits (or
    log-probabilities), and what the fit reports (training accuracy, chosen hyperparameters)."""
    check_view_protocol(protocol, ViewCounts(2))
    if protocol == "attentive":
        return _attentive_scorer(train_x, train_y, num_classes, seed, options)
    if protocol == "linear":
        from vtrep.probes.linear_probe import accuracy, train_linear_probe

        probe = train_linear_probe(train_x, train_y, num_classes, seed=seed, **options)
        return probe, {"train_accuracy": accuracy(probe, train_x, train_y)}
    if protocol == "knn":
        from vtrep.probes.knn import knn_votes

        return (lambda view: knn_votes(train_x, train_y, view, num_classes=num_classes, **options).log()), {}
    if protocol == "logistic":
        from vtrep.eval.series_classification import fit_classifier

        if options:
            raise UsageError(f"protocol 'logistic' takes no options, got {sorted(options)}")
        model, best_c = fit_classifier(train_x.numpy(), train_y.numpy(), "logistic", seed)
        return (lambda view: _sklearn_log_proba(model, num_classes, view)), {"best_c": best_c}
    raise UsageError(f"protocol must be one of linear, logistic, knn, attentive, got {protocol!r}")


def view_probabilities(protocol: str, train_x: torch.Tensor, train_y: torch.Tensor, test_views: torch.Tensor,
                       num_classes: int, seed: int, options: dict, chunk: int = 256) -> tuple[torch.Tensor, dict]:
    """Mean over views of each test video's per-view probabilities ``(n, classes)``, and the fit's report.

    ``train_x`` is one view per training video (``(n_train, D)``, or tokens ``(n_train, N, D)``);
    ``test_views`` is ``(n, views, D)`` (or ``(n, views, N, D)``).
    """
    from vtrep.probes.attentive_probe import predict_views

    if test_views.ndim != train_x.ndim + 1 or test_views.shape[2:] != train_x.shape[1:]:
        raise ValueError(f"test_views must be (n, views, *{tuple(train_x.shape[1:])}) to match the training "
                         f"features, got {tuple(test_views.shape)}")
    if len(test_views) == 0:
        raise ValueError("there are no test videos to score")
    scorer, report = view_scorer(protocol, train_x, train_y, num_classes, seed, options)
    probabilities = [predict_views(scorer, list(test_views[start:start + chunk].unbind(1))).cpu()
                     for start in range(0, len(test_views), chunk)]
    return torch.cat(probabilities), report


def score_views(protocol: str, train: tuple, test: tuple, num_classes: int, seed: int, options: dict) -> dict:
    """Multi-view top-1 of ``protocol`` trained on ``train = (x, y)`` and tested on ``test = (views, y)``."""
    probabilities, report = view_probabilities(protocol, *train, test[0], num_classes, seed, options)
    accuracy = (probabilities.argmax(dim=1) == test[1]).float().mean().item()
    return {"protocol": protocol, "accuracy": accuracy, **report, "num_train": len(train[0]),
            "num_test": len(test[0])}
