"""Per-latent rows of a ``vtrep concepts`` run, and which latents are temporal concept candidates.

A ``vtrep concepts`` output folder holds ``metrics.json`` (one list per metric, index = latent) and
``summary.json``; with a control, ``control/`` holds the same for the SAE fitted on the random-init
encoder's tokens. The two SAEs' latents do not correspond one to one, so a latent is compared with the
control's *distribution*:

- **above control**: its ``dynamic_score`` exceeds :data:`CONTROL_QUANTILE` (the 95th percentile) of the
  control's live latents' dynamic scores, i.e. it needs motion more than 19 in 20 latents a random encoder
  gives. Without a control run no latent is above control (the filter then says so).
- **candidate** (the report's filter "dynamic, not position-coded, above control"): class ``dynamic``,
  ``η² <`` the position-coded threshold, and above control.

Definitions of the metrics themselves: :mod:`vtrep.sae.metrics.temporal`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

CONTROL_QUANTILE = 0.95
METRICS = "metrics.json"
SUMMARY = "summary.json"
CONTROL = "control"


@dataclass
class LatentRow:
    """One live latent's metrics (``None``: undefined, e.g. no variance) and its verdicts."""

    latent: int
    kind: str
    dynamic_score: float | None
    order_score: float | None
    coherence: float | None
    eta2: float | None
    token_rate: float
    position_coded: bool
    above_control: bool
    candidate: bool


@dataclass
class ConceptRun:
    """The ``metrics.json`` / ``summary.json`` pair of one SAE (the trained run or its control)."""

    metrics: dict
    summary: dict


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: pass a folder written by `vtrep concepts`")
    with open(path) as handle:
        return json.load(handle)


def read_concept_runs(folder: str | Path) -> dict[str, ConceptRun]:
    """``{"trained": run}`` plus ``"random-init control"`` when the folder holds a ``control/`` run."""
    root = Path(folder)
    runs = {"trained": ConceptRun(_read_json(root / METRICS), _read_json(root / SUMMARY))}
    if (root / CONTROL / METRICS).is_file():
        runs["random-init control"] = ConceptRun(_read_json(root / CONTROL / METRICS),
                                                 _read_json(root / CONTROL / SUMMARY))
    for name, run in runs.items():
        lengths = {key: len(value) for key, value in run.metrics.items() if isinstance(value, list)}
        if len(set(lengths.values())) != 1 or "dynamic_score" not in lengths:
            raise ValueError(f"{root} ({name}): metrics.json is not one list per metric of equal length: {lengths}")
    return runs


def live_latents(metrics: dict) -> list[int]:
    """Latents that fired on at least one token of the folder."""
    return [k for k, rate in enumerate(metrics["token_rate"]) if rate and rate > 0]


def control_threshold(control: dict | None, quantile: float = CONTROL_QUANTILE) -> float | None:
    """The ``quantile`` of the control's live latents' dynamic scores; None without a control (or scores)."""
    if control is None:
        return None
    scores = [control["dynamic_score"][k] for k in live_latents(control) if control["dynamic_score"][k] is not None]
    if not scores:
        return None
    return float(torch.quantile(torch.tensor(scores, dtype=torch.float64), quantile))


def latent_rows(metrics: dict, threshold: float | None, position_coded_at: float) -> list[LatentRow]:
    """A :class:`LatentRow` per live latent of ``metrics`` (``threshold``: :func:`control_threshold`)."""
    rows = []
    for k in live_latents(metrics):
        dynamic = metrics["dynamic_score"][k]
        eta2 = metrics["eta2"][k]
        above = threshold is not None and dynamic is not None and dynamic > threshold
        coded = bool(metrics["position_coded"][k])
        rows.append(LatentRow(latent=k, kind=metrics["class"][k], dynamic_score=dynamic,
                              order_score=metrics["order_score"][k], coherence=metrics["coherence"][k], eta2=eta2,
                              token_rate=metrics["token_rate"][k], position_coded=coded, above_control=above,
                              candidate=above and metrics["class"][k] == "dynamic" and not coded
                              and eta2 is not None and eta2 < position_coded_at))
    return rows


def run_rows(runs: dict[str, ConceptRun]) -> tuple[list[LatentRow], float | None]:
    """The trained run's rows judged against its control, and the control threshold used."""
    control = runs.get("random-init control")
    threshold = control_threshold(None if control is None else control.metrics)
    position_coded_at = runs["trained"].summary["thresholds"]["position_coded"]
    return latent_rows(runs["trained"].metrics, threshold, position_coded_at), threshold
