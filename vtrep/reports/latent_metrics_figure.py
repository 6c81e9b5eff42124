"""The summary plot of a ``vtrep concepts`` run: its latents' temporal metrics, the control's beside them.

Four panels, one colour per run (trained, random-init control): the share of live latents in each class,
the distribution of dynamic scores (with the dynamic threshold and the control's 95 % quantile), each
latent's dynamic score against its position η² (the candidates of the report's filter ringed), and the
distribution of temporal coherence. Drawn on a bare :class:`~matplotlib.figure.Figure` (no pyplot).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from vtrep.io.atomic_write import atomic_write
from vtrep.reports.latent_metrics import ConceptRun, LatentRow, live_latents

COLOURS = {"trained": "tab:red", "random-init control": "tab:gray"}
BINS = np.linspace(-1.0, 1.0, 41)


def _defined(run: ConceptRun, name: str) -> np.ndarray:
    values = [run.metrics[name][k] for k in live_latents(run.metrics)]
    return np.array([v for v in values if v is not None], dtype=float)


def _class_shares(ax, runs: dict[str, ConceptRun]) -> None:
    labels = [c for c in next(iter(runs.values())).summary["share_of_live"] if c != "order_sensitive"]
    width = 0.8 / len(runs)
    for i, (name, run) in enumerate(runs.items()):
        share = run.summary["share_of_live"]
        ax.bar(np.arange(len(labels)) + i * width, [share.get(c, 0.0) for c in labels], width,
               color=COLOURS.get(name), label=f"{name} ({run.summary['live']} live)")
    ticks = np.arange(len(labels)) + width * (len(runs) - 1) / 2
    ax.set_xticks(ticks, [c.replace("_", "-") for c in labels], rotation=30, fontsize=8)
    ax.set(ylabel="share of live latents", title="temporal classes")
    ax.legend(fontsize=7)


def _histogram(ax, runs: dict[str, ConceptRun], name: str, title: str) -> None:
    for run_name, run in runs.items():
        values = np.clip(_defined(run, name), -1.0, 1.0)
        if len(values):
            ax.hist(values, bins=BINS, alpha=0.55, color=COLOURS.get(run_name), label=run_name,
                    weights=np.full(len(values), 1 / len(values)))
    ax.set(xlabel=name.replace("_", " "), ylabel="share of live latents", title=title)


def _scatter(ax, runs: dict[str, ConceptRun], rows: list[LatentRow]) -> None:
    for run_name, run in reversed(list(runs.items())):
        live = live_latents(run.metrics)
        pairs = [(run.metrics["dynamic_score"][k], run.metrics["eta2"][k]) for k in live]
        pairs = np.array([p for p in pairs if None not in p], dtype=float).reshape(-1, 2)
        ax.scatter(np.clip(pairs[:, 0], -1, 1), pairs[:, 1], s=6, alpha=0.6, color=COLOURS.get(run_name),
                   label=run_name)
    picked = np.array([(r.dynamic_score, r.eta2) for r in rows if r.candidate], dtype=float).reshape(-1, 2)
    ax.scatter(np.clip(picked[:, 0], -1, 1), picked[:, 1], s=40, facecolors="none", edgecolors="black",
               label=f"candidates ({len(picked)})")
    ax.set(xlabel="dynamic score", ylabel="position η²", ylim=(-0.02, 1.02), title="motion need vs position coding")
    ax.legend(fontsize=7)


def metrics_summary_figure(runs: dict[str, ConceptRun], rows: list[LatentRow], threshold: float | None,
                           path: str | Path) -> Path:
    """Draw the four panels into ``path`` (PNG, written atomically) and return it."""
    fig = Figure(figsize=(18.0, 4.2), layout="constrained")
    shares, dynamic, scatter, coherence = fig.subplots(1, 4)
    _class_shares(shares, runs)
    _histogram(dynamic, runs, "dynamic_score", "how much activity needs motion")
    thresholds = runs["trained"].summary["thresholds"]
    dynamic.axvline(thresholds["dynamic"], color="black", linestyle="--", linewidth=0.8, label="dynamic at")
    if threshold is not None:
        dynamic.axvline(threshold, color="tab:gray", linestyle=":", linewidth=1.2, label="control 95 %")
    dynamic.legend(fontsize=7)
    _scatter(scatter, runs, rows)
    scatter.axhline(thresholds["position_coded"], color="black", linestyle="--", linewidth=0.8)
    scatter.axvline(thresholds["dynamic"], color="black", linestyle="--", linewidth=0.8)
    _histogram(coherence, runs, "coherence", "temporal coherence (adjacent positions)")
    coherence.legend(fontsize=7)
    return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100))
