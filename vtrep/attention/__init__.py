"""Sparse attention: patterns as FlexAttention-style ``mask_mod`` functions and the backends that run them."""

from vtrep.attention.attend import PatternAttention
from vtrep.attention.backends.dense import dense_attention, materialise_mask
from vtrep.attention.patterns import (
                                      BlockTopK,
                                      DividedSpace,
                                      DividedTime,
                                      FixedPattern,
                                      LocalWindow,
                                      Pattern,
                                      StridedPattern,
)

__all__ = ["Pattern", "LocalWindow", "StridedPattern", "FixedPattern", "DividedSpace", "DividedTime", "BlockTopK",
           "PatternAttention", "dense_attention", "materialise_mask"]
