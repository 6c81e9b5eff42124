"""Every user-facing parameter is checked when its component is built, with a message that names the parameter,
the accepted values and the value given (one case per kind of check per component)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from vtrep.backbones import (
    DilatedConvEncoder,
    PatchMLPEncoder,
    PatchTSTEncoder,
    VideoViT,
    create_video_vit,
)
from vtrep.decoders import MAEDecoder, MAEDecoderConfig
from vtrep.eval.encoders import load_encoder, load_task
from vtrep.eval.extract_cli import extract
from vtrep.eval.probe_cli import probe
from vtrep.io.pretrained import from_pretrained
from vtrep.masking import RandomMasking, TubeMasking
from vtrep.optim.schedule import WarmupCosine
from vtrep.sae import JumpReLUSAE, TopKSAE
from vtrep.tasks import SeriesForecastTask, SeriesMAETask, TS2VecTask, VideoMAETask
from vtrep.tasks.sae import SAETask

VIT = dict(img_size=16, num_frames=4, patch_size=8, tubelet_size=2, embed_dim=16, depth=1, num_heads=2)
SERIES = dict(context_length=32, patch_length=8, stride=8, d_model=8)


def vit(**changes: Any) -> VideoViT:
    return VideoViT(**{**VIT, **changes})


def decoder(**changes: Any) -> MAEDecoder:
    return MAEDecoder(16, 8, (2, 2, 2), MAEDecoderConfig(**{"dim": 8, "depth": 1, "num_heads": 2, **changes}))


def mlp(**changes: Any) -> PatchMLPEncoder:
    return PatchMLPEncoder(**{**SERIES, **changes})


def tst(**changes: Any) -> PatchTSTEncoder:
    return PatchTSTEncoder(**{**SERIES, "num_heads": 2, "depth": 1, **changes})


def sae_task(**changes: Any) -> SAETask:
    return SAETask(TopKSAE(4, 8, k=2), **changes)


CASES: dict[str, tuple[Callable[[], Any], type[Exception], str]] = {
    # video backbone: divisibility, integer and number ranges, choices
    "vit img_size % patch_size": (lambda: vit(img_size=30), ValueError,
                                  "img_size=30 is not divisible by patch_size=8; choose img_size as a multiple of 8 "
                                  "(e.g. 24)"),
    "vit num_frames % tubelet_size": (lambda: vit(num_frames=5), ValueError,
                                      "num_frames=5 is not divisible by tubelet_size=2; choose num_frames as a "
                                      "multiple of 2 (e.g. 4)"),
    "vit embed_dim % num_heads": (lambda: vit(num_heads=3), ValueError, "embed_dim=16 is not divisible by num_heads=3"),
    "vit num_heads": (lambda: vit(num_heads=0), ValueError, "num_heads must be a positive integer, got 0"),
    "vit patch_size": (lambda: vit(patch_size=0), ValueError, "patch_size must be a positive integer, got 0"),
    "vit mlp_ratio": (lambda: vit(mlp_ratio=0.0), ValueError, "mlp_ratio must be a finite number > 0, got 0.0"),
    "vit norm_eps": (lambda: vit(norm_eps=-1e-6), ValueError, "norm_eps must be a finite number > 0, got -1e-06"),
    "vit drop_path_rate": (lambda: vit(drop_path_rate=1.0), ValueError, "drop_path_rate must be in [0, 1), got 1.0"),
    "vit pos_embed": (lambda: vit(pos_embed="learned"), ValueError,
                      "pos_embed must be 'sincos' or 'separable', got 'learned'"),
    "vit preset": (lambda: create_video_vit("huge"), ValueError,
                   "unknown backbone preset 'huge'; available: ['base', 'micro', 'small', 'tiny']"),
    # decoder
    "decoder dim % num_heads": (lambda: decoder(dim=10, num_heads=3), ValueError,
                                "decoder.dim=10 is not divisible by decoder.num_heads=3"),
    "decoder dim": (lambda: decoder(dim=0), ValueError, "decoder.dim must be a positive integer, got 0"),
    "decoder depth": (lambda: decoder(depth=0), ValueError, "decoder depth must be >= 1, got 0"),
    "decoder mlp_ratio": (lambda: decoder(mlp_ratio=-2.0), ValueError,
                          "decoder.mlp_ratio must be a finite number > 0, got -2.0"),
    "decoder final_norm_eps": (lambda: decoder(final_norm_eps=0.0), ValueError,
                               "decoder.final_norm_eps must be a finite number > 0, got 0.0"),
    # series encoders
    "patchtst d_model % num_heads": (lambda: tst(num_heads=3), ValueError, "d_model=8 is not divisible by num_heads=3"),
    "patchtst context_length vs patch_length": (lambda: tst(context_length=4), ValueError,
                                                "context_length=4 is shorter than patch_length=8"),
    "patchtst stride": (lambda: tst(stride=0), ValueError, "patch_length and stride must be >= 1, got 8, 0"),
    "patchtst depth": (lambda: tst(depth=-1), ValueError, "depth must be an integer >= 0, got -1"),
    "patchtst dropout": (lambda: tst(dropout=1.5), ValueError, "dropout must be in [0, 1), got 1.5"),
    "patchtst norm": (lambda: tst(norm="group"), ValueError, "norm must be 'batch' or 'layer', got 'group'"),
    "patch mlp d_model": (lambda: mlp(d_model=0), ValueError, "d_model must be a positive integer, got 0"),
    "patch mlp dropout is not a bool": (lambda: mlp(dropout=True), ValueError, "dropout must be in [0, 1), got True"),
    "dilated conv hidden_dim": (lambda: DilatedConvEncoder(hidden_dim=0), ValueError, "hidden_dim must be >= 1, got 0"),
    "dilated conv dropout": (lambda: DilatedConvEncoder(depth=1, dropout=-0.1), ValueError,
                             "dropout must be in [0, 1), got -0.1"),
    # tasks
    "videomae base_lr": (lambda: VideoMAETask(vit(), base_lr=0.0), ValueError,
                         "need 0 <= min_lr <= base_lr and base_lr > 0, got base_lr=0.0, min_lr=1e-05"),
    "videomae weight_decay": (lambda: VideoMAETask(vit(), weight_decay=-0.05), ValueError,
                              "weight_decay must be a finite number >= 0, got -0.05"),
    "videomae betas": (lambda: VideoMAETask(vit(), betas=(0.9, 1.0)), ValueError, "betas[1] must be in [0, 1), got 1.0"),
    "videomae num_viz_clips": (lambda: VideoMAETask(vit(), num_viz_clips=-1), ValueError,
                               "num_viz_clips must be an integer >= 0, got -1"),
    "videomae batch_size_for_lr": (lambda: VideoMAETask(vit(), batch_size_for_lr=0), ValueError,
                                   "batch_size_for_lr must be a positive integer, got 0"),
    "series mae lr": (lambda: SeriesMAETask(mlp(), lr=0.0), ValueError, "lr must be a finite number > 0, got 0.0"),
    "series mae head_dropout": (lambda: SeriesMAETask(mlp(), head_dropout=1.0), ValueError,
                                "head_dropout must be in [0, 1), got 1.0"),
    "series mae contrastive_weight": (lambda: SeriesMAETask(mlp(), contrastive_weight=-1.0), ValueError,
                                      "contrastive_weight must be a finite number >= 0, got -1.0"),
    "forecast horizon": (lambda: SeriesForecastTask(mlp(), horizon=0), ValueError,
                         "horizon must be a positive integer, got 0"),
    "forecast warmup_fraction": (lambda: SeriesForecastTask(mlp(), warmup_fraction=1.0), ValueError,
                                 "warmup_fraction must be in [0, 1), got 1.0"),
    "forecast weight_decay": (lambda: SeriesForecastTask(mlp(), weight_decay=float("nan")), ValueError,
                              "weight_decay must be a finite number >= 0, got nan"),
    "forecast encoder_checkpoint exists": (lambda: SeriesForecastTask(mlp(), encoder_checkpoint="no/such.ckpt"),
                                           FileNotFoundError, "encoder_checkpoint='no/such.ckpt' does not exist"),
    "ts2vec temporal_unit": (lambda: TS2VecTask(DilatedConvEncoder(depth=1), temporal_unit=-1), ValueError,
                             "temporal_unit must be an integer >= 0, got -1"),
    "ts2vec mask_prob": (lambda: TS2VecTask(DilatedConvEncoder(depth=1), mask_prob=1.0), ValueError,
                         "mask_prob must be in [0, 1), got 1.0"),
    "ts2vec alpha": (lambda: TS2VecTask(DilatedConvEncoder(depth=1), alpha=2.0), ValueError,
                     "alpha must be in [0, 1], got 2.0"),
    "sae task lr": (lambda: sae_task(lr=-1e-4), ValueError, "lr must be a finite number > 0, got -0.0001"),
    "sae task dense_threshold": (lambda: sae_task(dense_threshold=0.0), ValueError,
                                 "dense_threshold must be a firing rate in (0, 1], got 0.0"),
    "sae task decoder_bias_init": (lambda: sae_task(decoder_bias_init="zeros"), ValueError,
                                   "decoder_bias_init must be 'geometric_median', 'mean' or 'none', got 'zeros'"),
    "sae task probe columns": (lambda: sae_task(probe_check=True, clip_column=1, label_column=1), ValueError,
                               "clip_column and label_column must be different meta columns, both are 1"),
    # SAEs, masking, schedule
    "topk k": (lambda: TopKSAE(4, 8, k=9), ValueError, "k must be an integer in [1, num_latents=8], got 9"),
    "jumprelu bandwidth": (lambda: JumpReLUSAE(4, 8, bandwidth=0.0), ValueError,
                           "bandwidth must be a finite number > 0, got 0.0"),
    "random masking mask_ratio": (lambda: RandomMasking(1.0), ValueError, "mask_ratio must be in (0, 1), got 1.0"),
    "tube masking mask_ratio": (lambda: TubeMasking(0.0), ValueError, "mask_ratio must be in (0, 1), got 0.0"),
    "warmup cosine min_ratio": (lambda: WarmupCosine(10, 2, min_ratio=1.5), ValueError,
                                "min_ratio must be in [0, 1] (the final fraction of the peak rate), got 1.5"),
    # evaluation commands: ranges and paths
    "probe epochs": (lambda: probe(".", None, epochs=0), ValueError, "epochs must be a positive integer, got 0"),
    "probe encoder exists": (lambda: probe("no/such/encoder", None), FileNotFoundError,
                             "encoder='no/such/encoder' is neither a saved encoder folder nor a checkpoint file"),
    "extract shard_rows": (lambda: extract("enc", None, "out", shard_rows=0), ValueError,
                           "shard_rows must be a positive integer, got 0"),
    "extract batch_size": (lambda: extract("enc", None, "out", batch_size=-2), ValueError,
                           "batch_size must be a positive integer, got -2"),
    "extract encoder exists": (lambda: load_encoder("no/such/encoder"), FileNotFoundError,
                               "encoder='no/such/encoder' is neither a saved encoder folder nor a checkpoint file"),
    "fit config exists": (lambda: load_task("no/such/config.yaml"), FileNotFoundError,
                          "config='no/such/config.yaml' does not exist"),
    "saved encoder exists": (lambda: from_pretrained("no/such/encoder"), FileNotFoundError,
                             f"{Path('no/such/encoder/config.json')} not found: a vtrep artefact is a folder with "
                             "config.json and model.safetensors"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_parameter_is_refused_at_construction_naming_it(case):
    build, error, message = CASES[case]
    with pytest.raises(error) as info:
        build()
    assert str(info.value) == message
