"""Encoders. ``VideoViT`` plus a registry of named sizes."""

from vtrep.backbones.dilated_conv import DilatedConvEncoder
from vtrep.backbones.registry import DECODER_PRESETS, PRESETS, create_video_vit
from vtrep.backbones.series_mlp import PatchMLPEncoder
from vtrep.backbones.series_transformer import PatchTSTEncoder
from vtrep.backbones.video_vit import VideoViT

__all__ = ["VideoViT", "PatchTSTEncoder", "PatchMLPEncoder", "DilatedConvEncoder", "PRESETS", "DECODER_PRESETS", "create_video_vit"]
