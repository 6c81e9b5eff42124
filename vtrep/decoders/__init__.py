"""Decoders for masked pretraining."""

from vtrep.decoders.mae_decoder import MAEDecoder, MAEDecoderConfig

__all__ = ["MAEDecoder", "MAEDecoderConfig"]
