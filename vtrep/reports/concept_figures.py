"""Concept-report figures (PNG) of SAE latents: frame grids with token heatmaps, series with shaded
activations, activation over time, and a summary of the selected latents.

Figures are drawn on bare :class:`matplotlib.figure.Figure` objects (the Agg canvas, no pyplot), so
drawing never touches a global backend or opens a window. Every latent's colours run from 0 to its
largest activation over the drawn items (``vmax``), so heatmaps of one latent compare across items.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import torch
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from vtrep.reports.concepts import LatentStats, Span, steps_activation

CMAP = matplotlib.colormaps["inferno"]
LINE_COLOURS = matplotlib.colormaps["tab10"]
MAX_CHANNELS = 4  # more curves in one panel stop being readable
DPI = 100


@dataclass
class ItemView:
    """One top item to draw: video ``data (C, T, H, W)`` in [0, 1] with ``grid (P, h, w)``, or series
    ``data (C, L)`` with ``grid (P, C')`` (``C' = 1`` for step tokens, which cover every channel)."""

    item: int
    caption: str
    data: torch.Tensor
    grid: torch.Tensor


def denormalise(video: torch.Tensor, mean: list[float] | None, std: list[float] | None) -> torch.Tensor:
    """A normalised clip ``(C, T, H, W)`` back to [0, 1]; without mean/std, min-max scaled per clip."""
    if mean is None or std is None:
        low, high = video.min(), video.max()
        return (video - low) / (high - low).clamp_min(1e-12)
    shape = (-1,) + (1,) * (video.dim() - 1)
    return (video * torch.tensor(std).view(shape) + torch.tensor(mean).view(shape)).clamp(0, 1)


def heat_rgba(values: np.ndarray, norm: Normalize) -> np.ndarray:
    """Activations ``(...)`` → RGBA ``(..., 4)``; zero is transparent so the frame shows through."""
    scaled = np.clip(norm(values), 0, 1)
    rgba = CMAP(scaled)
    rgba[..., 3] = np.where(values > 0, 0.35 + 0.5 * scaled, 0.0)
    return rgba


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=DPI)
    return path


def _colourbar(fig: Figure, axes, norm: Normalize, latent: int) -> None:
    fig.colorbar(ScalarMappable(norm, CMAP), ax=axes, fraction=0.025, pad=0.01, label=f"latent {latent} activation")


FRAME_CELL = (1.45, 1.55)  # inches per frame tile, with its title
FRAME_MARGINS = (0.9, 1.1, 0.45, 0.1)  # left (clip captions), right (colour bar), top (title), bottom


def frame_grid_inches(rows: int, cols: int) -> tuple[float, float]:
    """Figure size of a frame grid: a tile per frame plus fixed margins for captions and the colour bar."""
    left, right, top, bottom = FRAME_MARGINS
    return FRAME_CELL[0] * cols + left + right, FRAME_CELL[1] * rows + top + bottom


def video_frames_figure(latent: int, views: list[ItemView], span: Span, vmax: float, max_frames: int,
                        path: Path) -> Path:
    """Per top clip one row of evenly spaced frames with the latent's token heatmap over each frame."""
    frames = views[0].data.shape[1]
    frame_ids = np.unique(np.linspace(0, frames - 1, min(max_frames, frames)).round().astype(int))
    rows, cols = len(views), len(frame_ids)
    (width_in, height_in), (left, right, top, bottom) = frame_grid_inches(rows, cols), FRAME_MARGINS
    fig = Figure(figsize=(width_in, height_in))  # fixed margins: constrained layout is slow on many tiles
    axes = fig.subplots(rows, cols, squeeze=False, gridspec_kw=dict(
        left=left / width_in, right=1 - right / width_in, top=1 - top / height_in, bottom=bottom / height_in,
        wspace=0.08, hspace=0.25))
    norm = Normalize(0.0, max(vmax, 1e-12))
    for r, view in enumerate(views):
        height, width = view.data.shape[2:]
        for c, frame in enumerate(frame_ids):
            ax = axes[r, c]
            heat = view.grid[min(int(frame) // span.stride, len(view.grid) - 1)].numpy()
            ax.imshow(view.data[:, frame].permute(1, 2, 0).numpy(), extent=(0, width, height, 0))
            ax.imshow(heat_rgba(heat, norm), extent=(0, width, height, 0), interpolation="nearest")
            ax.set_title(f"f{frame}  max {heat.max():.2f}", fontsize=8)
            ax.set_xticks([]), ax.set_yticks([])
        axes[r, 0].set_ylabel(view.caption, fontsize=8)
    bar = fig.add_axes((1 - (right - 0.15) / width_in, bottom / height_in, 0.15 / width_in,
                        1 - (top + bottom) / height_in))
    fig.colorbar(ScalarMappable(norm, CMAP), cax=bar, label=f"latent {latent} activation")
    fig.suptitle(f"Latent {latent}: top {rows} clips, token activation over frames ({token_cover(span)})",
                 fontsize=10, y=1 - 0.12 / height_in, va="top")
    return _save(fig, path)


def _series_rows(views: list[ItemView]) -> list[tuple[ItemView, list[int], torch.Tensor]]:
    """Per view: the channels to draw and, per channel, which grid column shades it."""
    out = []
    for view in views:
        channels = view.data.shape[0]
        if view.grid.shape[1] == 1 and channels > 1:  # step tokens: one activation for every channel
            out.append((view, list(range(min(channels, MAX_CHANNELS))), torch.zeros(channels, dtype=torch.long)))
            continue
        firing = [c for c in range(view.grid.shape[1]) if view.grid[:, c].max() > 0] or [0]
        out.append((view, firing[:MAX_CHANNELS], torch.arange(view.grid.shape[1])))
    return out


def token_cover(span: Span) -> str:
    """How a token maps to time, for axis labels."""
    if span.size == span.stride == 1:
        return f"one token per {span.unit[:-1]}"
    stride = "" if span.stride == span.size else f", stride {span.stride}"
    return f"a token covers {span.size} {span.unit}{stride}"


def _shade_series(ax, view: ItemView, channels: list[int], column: torch.Tensor, span: Span, norm: Normalize) -> None:
    """Curves of ``channels``; the panel's background at each step shaded by the strongest drawn
    channel's activation there, and each channel's curve marked where that channel is on."""
    length = view.data.shape[1]
    steps = np.arange(length)
    acts = [steps_activation(view.grid[:, column[c]], span, length).numpy() for c in channels]
    curves = view.data[channels].float().numpy()
    low, high = float(curves.min()), float(curves.max())
    pad = 0.05 * max(high - low, 1e-6)
    strongest = np.max(acts, axis=0)
    on = strongest > 0
    background = heat_rgba(strongest[on], norm)
    background[:, 3] *= 0.6  # lighter than the markers, so the curve stays readable
    ax.bar(steps[on], high - low + 2 * pad, bottom=low - pad, width=1.0, color=background, linewidth=0)
    for i, (c, curve, act) in enumerate(zip(channels, curves, acts)):
        ax.plot(steps, curve, color=LINE_COLOURS(i), linewidth=1.0, label=f"channel {c}", zorder=2)
        mine = act > 0
        ax.scatter(steps[mine], curve[mine], c=act[mine], cmap=CMAP, norm=norm, s=14, edgecolors="none", zorder=3)
    ax.set_ylim(low - pad, high + pad)
    ax.set_xlim(-0.5, length - 0.5)


def series_figure(latent: int, views: list[ItemView], span: Span, vmax: float, path: Path) -> Path:
    """Per top series one panel: the curves of the channels where the latent fires (at most four),
    shaded and marked by the latent's activation at each step (max over the patches covering it)."""
    fig = Figure(figsize=(9.0, 1.7 * len(views) + 0.7), layout="constrained")
    axes = fig.subplots(len(views), 1, squeeze=False)[:, 0]
    norm = Normalize(0.0, max(vmax, 1e-12))
    for ax, (view, channels, column) in zip(axes, _series_rows(views)):
        _shade_series(ax, view, channels, column, span, norm)
        ax.set_ylabel(view.caption, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7, loc="upper right")
    axes[-1].set_xlabel(f"time step ({token_cover(span)})")
    _colourbar(fig, list(axes), norm, latent)
    fig.suptitle(f"Latent {latent}: top {len(views)} series, shaded where the latent is on", fontsize=10)
    return _save(fig, path)


def activation_time_figure(latent: int, views: list[ItemView], span: Span, path: Path) -> Path:
    """One line per top item: the latent's activation at each frame / step (max over the tokens there)."""
    fig = Figure(figsize=(8.0, 3.2), layout="constrained")
    ax = fig.subplots()
    for i, view in enumerate(views):
        length = view.data.shape[1]
        per_position = view.grid.reshape(len(view.grid), -1).amax(dim=1)
        ax.step(np.arange(length), steps_activation(per_position, span, length).numpy(), where="mid",
                color=LINE_COLOURS(i % 10), linewidth=1.3, label=view.caption.replace("\n", " "))
    ax.set_xlabel(span.unit[:-1] if span.unit.endswith("s") else span.unit)
    ax.set_ylabel("max activation over tokens")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title(f"Latent {latent}: activation over time, top {len(views)} items", fontsize=10)
    return _save(fig, path)


def summary_figure(stats: list[LatentStats], token_rate: torch.Tensor, mean_on: torch.Tensor, span: Span,
                   max_token_rate: float | None, path: Path) -> Path:
    """Three panels: every latent's token rate vs mean activation (selected ones marked), where the
    selected latents fire along the item, and how long they stay on."""
    fig = Figure(figsize=(15.0, 0.35 * len(stats) + 3.2), layout="constrained")
    scatter, where, runs = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.0, 1.2, 1.0]})
    alive = token_rate > 0
    scatter.scatter(token_rate[alive].numpy(), mean_on[alive].numpy(), s=6, color="0.6", label="all firing latents")
    picked = [s.latent for s in stats]
    scatter.scatter(token_rate[picked].numpy(), mean_on[picked].numpy(), s=22, color="crimson", label="reported")
    for s in stats:
        scatter.annotate(str(s.latent), (s.token_rate, s.mean_on), fontsize=7, xytext=(3, 2),
                         textcoords="offset points")
    if max_token_rate is not None:
        scatter.axvline(max_token_rate, color="0.3", linestyle="--", linewidth=0.8, label="dense above")
    scatter.set_xscale("log")
    scatter.set(xlabel="token firing rate", ylabel="mean activation when on",
                title=f"{int(alive.sum())} of {len(token_rate)} latents fire")
    scatter.legend(fontsize=7)
    table = np.array([s.where for s in stats])
    image = where.imshow(table, aspect="auto", cmap="viridis", vmin=0, interpolation="nearest")
    fig.colorbar(image, ax=where, label="fraction of on positions")
    where.set_yticks(range(len(stats)), [str(s.latent) for s in stats], fontsize=7)
    where.set(xlabel=f"token position ({token_cover(span)})", ylabel="latent",
              title="where in the item it fires")
    y = np.arange(len(stats))
    runs.barh(y, [s.mean_run_steps for s in stats], color="steelblue", label="mean run")
    runs.scatter([s.max_run_steps for s in stats], y, color="black", marker="|", s=80, label="longest run")
    runs.set_yticks(y, [str(s.latent) for s in stats], fontsize=7)
    runs.invert_yaxis()
    runs.set(xlabel=f"run length ({span.unit})", title="how long it stays on")
    runs.legend(fontsize=7)
    return _save(fig, path)
