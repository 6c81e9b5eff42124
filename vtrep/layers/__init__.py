"""Building blocks shared by the backbones and decoders."""

from vtrep.layers.patch_embed import TubeletEmbed
from vtrep.layers.pos_embed import (
    SeparablePosEmbed,
    SinCosPosEmbed,
    build_pos_embed,
    sincos_table,
)

__all__ = ["TubeletEmbed", "SinCosPosEmbed", "SeparablePosEmbed", "build_pos_embed", "sincos_table"]
