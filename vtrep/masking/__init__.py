"""Masking strategies; all return :class:`MaskOutput`."""

from vtrep.masking.base import MaskingStrategy, MaskOutput
from vtrep.masking.spacetime import RandomMasking
from vtrep.masking.tube import TubeMasking

__all__ = ["MaskOutput", "MaskingStrategy", "TubeMasking", "RandomMasking"]
