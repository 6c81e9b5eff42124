"""``vtrep probe`` / ``extract`` take the clip geometry from the encoder unless the data config sets it."""

from __future__ import annotations

import pytest

from datamodules import SyntheticVideoDataModule
from vtrep.backbones import create_video_vit
from vtrep.eval.geometry import with_encoder_geometry


def test_defaults_take_the_encoders_geometry(tmp_path, capsys):
    encoder = create_video_vit("micro", img_size=16, num_frames=4, depth=1)
    data = SyntheticVideoDataModule(num_per_class=2, cache_dir=str(tmp_path))
    adopted = with_encoder_geometry(encoder, data)
    assert (adopted.hparams["num_frames"], adopted.hparams["img_size"]) == (4, 16)
    assert adopted.hparams["num_per_class"] == 2 and adopted.num_frames == 4  # the rest as the user gave it
    assert "num_frames=4, img_size=16 from the encoder's config.json" in capsys.readouterr().out


def test_a_conflicting_setting_is_refused_naming_both(tmp_path):
    encoder = create_video_vit("micro", img_size=32, num_frames=4, depth=1)
    data = SyntheticVideoDataModule(num_per_class=2, num_frames=6, cache_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r"the encoder takes num_frames=4 .* but the data sets num_frames=6; drop "
                                         r"--data.init_args.num_frames or set it to 4"):
        with_encoder_geometry(encoder, data)


def test_matching_data_is_used_as_it_is(tmp_path):
    encoder = create_video_vit("micro", img_size=32, num_frames=8, depth=1)
    data = SyntheticVideoDataModule(num_per_class=2, cache_dir=str(tmp_path))
    assert with_encoder_geometry(encoder, data) is data
