"""The SAE's latent density picture: a histogram of log10 firing rates on the validation inputs.

The standard health check of a sparse autoencoder (dead latents pile up at the left, dense ones at the
right of ``log10 rate = -1``); ``SAETask`` draws it at every validation end and logs it.
"""

from __future__ import annotations

import io

import numpy as np
import torch


def firing_density_image(fired: torch.Tensor, count: int, title: str = "") -> torch.Tensor:
    """``(C, H, W)`` float image in [0, 1] of the histogram of ``log10(fired / count)`` over latents ``(K,)``.

    Dead latents (never fired) are drawn as one bar left of the axis' smallest possible rate ``1 / count``.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from PIL import Image

    if count <= 0:
        raise ValueError(f"count must be a positive number of inputs, got {count}")
    fired = fired.detach().cpu().double()
    alive = fired[fired > 0]
    floor = -np.log10(count) - 0.5
    fig = Figure(figsize=(5, 3), dpi=100)
    ax = fig.subplots()
    if alive.numel():
        ax.hist(np.log10(alive.numpy() / count), bins=40, range=(floor + 0.5, 0.0), color="tab:blue", label="alive")
    dead = int((fired == 0).sum())
    ax.bar([floor], [dead], width=0.25, color="tab:red", label=f"dead ({dead})")
    ax.set_xlabel("log10 firing rate")
    ax.set_ylabel("latents")
    ax.set_title(title or f"latent density, {fired.numel()} latents, {count} inputs", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    array = np.asarray(Image.open(buffer).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()
