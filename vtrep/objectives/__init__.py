"""Targets and losses."""

from vtrep.objectives.reconstruction import (
           MaskedReconstructionLoss,
           ReconstructionOutput,
)
from vtrep.objectives.targets import (
           IMAGENET_MEAN,
           IMAGENET_STD,
           PixelTarget,
           patchify_pixels,
           unpatchify_pixels,
)

__all__ = ["PixelTarget", "MaskedReconstructionLoss", "ReconstructionOutput", "patchify_pixels",
           "unpatchify_pixels", "IMAGENET_MEAN", "IMAGENET_STD"]
