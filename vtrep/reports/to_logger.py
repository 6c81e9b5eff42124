"""Send a picture to whichever logger a run has: W&B (``log_image``), TensorBoard (``add_image``), or none."""

from __future__ import annotations

import torch


def log_image(logger, key: str, image: torch.Tensor, step: int) -> bool:
    """Log ``image`` ``(C, H, W)`` in [0, 1] under ``key``; ``False`` when the logger takes no images (CSV)."""
    if logger is None:
        return False
    if hasattr(logger, "log_image"):
        logger.log_image(key=key, images=[image], step=step)
        return True
    experiment = getattr(logger, "experiment", None)
    if hasattr(experiment, "add_image"):
        experiment.add_image(key, image, step)
        return True
    return False
