"""Sparse attention: patterns as FlexAttention-style ``mask_mod`` functions and the backends that run them."""

from vtrep.attention.backends.dense import dense_attention, materialise_mask
from vtrep.attention.patterns import (DividedSpace, DividedTime, FixedPattern, LocalWindow, Pattern,
                                      StridedPattern)

__all__ = ["Pattern", "LocalWindow", "StridedPattern", "FixedPattern", "DividedSpace", "DividedTime",
           "dense_attention", "materialise_mask"]
