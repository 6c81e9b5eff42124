"""Masking strategies; all return :class:`MaskOutput`."""

from vtrep.masking.adamae import AdaMAESampler
from vtrep.masking.base import MaskingStrategy, MaskOutput
from vtrep.masking.fixed import FixedMask, mask_from_bool
from vtrep.masking.running_cell import DualMasking, running_cell_keep
from vtrep.masking.series import ComplementaryPatchMasking, SeriesPatchMasking
from vtrep.masking.spacetime import RandomMasking
from vtrep.masking.timestamp import CropPair, TimestampMasking, overlapping_crops
from vtrep.masking.tube import TubeMasking

__all__ = ["MaskOutput", "MaskingStrategy", "TubeMasking", "RandomMasking", "AdaMAESampler", "DualMasking",
           "running_cell_keep", "SeriesPatchMasking",
           "ComplementaryPatchMasking", "TimestampMasking", "CropPair", "overlapping_crops", "FixedMask", "mask_from_bool"]
