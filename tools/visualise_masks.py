"""Draw what a masking strategy shows the encoder, for a few clips of a run's data.

    python tools/visualise_masks.py --run_config runs/.../config.yaml --ckpt_path runs/.../last.ckpt \
        --output mask_views.png

``run_config`` is the ``config.yaml`` that ``vtrep fit`` writes beside its logs (or any fit config);
without ``ckpt_path`` the strategy is drawn at initialisation. Per clip the picture has one row of
input frames, one of the visible tokens (masked ones grey) and, for learned strategies such as
AdaMAE, one of the sampling-probability heatmap (black → red → yellow → white, scaled per clip).
"""

from __future__ import annotations

from pathlib import Path

import torch

from vtrep.io.batches import batch_input


def visualise(run_config: str, ckpt_path: str | None = None, num_clips: int = 4, split: str = "val",
              output: str = "mask_views.png", max_frames: int = 16, seed: int = 0) -> Path:
    """Write the mask-view PNG for the first ``num_clips`` clips of ``split`` ("train" or "val")."""
    from vtrep.eval.encoders import load_task
    from vtrep.reports.mask_views import draw_masks
    from vtrep.reports.recon_grid import save_grid

    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    torch.manual_seed(seed)
    task, data = load_task(run_config, ckpt_path)
    data.prepare_data()
    data.setup("fit")
    batch = next(iter(data.feature_dataloader(split)))
    video = batch_input(batch, "video")
    path = save_grid(draw_masks(task, video[:num_clips], max_frames), output)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    from jsonargparse import CLI

    CLI(visualise, as_positional=False)
