"""Attention patterns, one per file; each is a ``mask_mod(b, h, q_idx, kv_idx) -> bool`` (True = attend)."""

from vtrep.attention.patterns.base import Pattern
from vtrep.attention.patterns.block_topk import BlockTopK
from vtrep.attention.patterns.divided import DividedSpace, DividedTime
from vtrep.attention.patterns.fixed import FixedPattern
from vtrep.attention.patterns.local_window import LocalWindow
from vtrep.attention.patterns.strided import StridedPattern

__all__ = ["Pattern", "LocalWindow", "StridedPattern", "FixedPattern", "DividedSpace", "DividedTime", "BlockTopK"]
