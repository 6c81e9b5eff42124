"""``vtrep probe --test_views``: multi-view testing through the command, with and without folds."""

from __future__ import annotations

import json
import sys

import pytest

from vtrep.backbones import create_video_vit
from vtrep.cli import main
from vtrep.io.pretrained import save_pretrained

# generated clips are one clip long and square, so their views coincide: this file checks the command's
# plumbing; where views lie and how they are averaged is tests/unit/test_multiview.py's
DATA = ["--data", "datamodules.SyntheticVideoDataModule", "--data.init_args.num_per_class", "4",
        "--data.init_args.num_frames", "4", "--data.init_args.size", "32", "--data.init_args.img_size", "32",
        "--data.init_args.val_fraction", "0.5", "--data.init_args.batch_size", "4"]


@pytest.fixture()
def encoder(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["vtrep"])
    monkeypatch.setenv("VTREP_CACHE", str(tmp_path / "cache"))
    save_pretrained(create_video_vit("micro", img_size=32, num_frames=4, depth=1), tmp_path / "encoder")
    return str(tmp_path / "encoder")


def _probe(encoder: str, output, *args: str) -> dict:
    main(["probe", "--encoder", encoder, *DATA, *args, "--output", str(output)])
    return json.loads(output.read_text())


def test_one_by_one_views_give_the_single_view_result(encoder, tmp_path):
    plain = _probe(encoder, tmp_path / "plain.json", "--epochs", "3", "--compare_random", "false")
    explicit = _probe(encoder, tmp_path / "one.json", "--epochs", "3", "--compare_random", "false",
                      "--test_views", "{clips: 1, crops: 1}")
    assert plain == explicit
    assert plain["pretrained"]["test_views"] == {"clips": 1, "crops": 1}


def test_views_with_folds_are_recorded_and_counted_per_video(encoder, tmp_path, capsys):
    result = _probe(encoder, tmp_path / "views.json", "--protocol", "knn", "--protocol_options", "{k: 3}",
                    "--folds", "2", "--test_views", "{clips: 2, crops: 3}")
    assert "2 clips x 3 crops per test video" in capsys.readouterr().out
    for name in ("pretrained", "random_init"):
        res = result[name]
        assert res["test_views"] == {"clips": 2, "crops": 3}
        assert (res["folds"], res["num_train"]) == (2, 16) and 0.0 <= res["accuracy"] <= 1.0


def test_bad_views_and_svm_views_are_refused(encoder, tmp_path, monkeypatch):
    monkeypatch.setenv("VTREP_DEBUG", "1")  # the raised error itself (its one-line form: tests/unit/test_cli_errors.py)
    with pytest.raises(ValueError, match="test_views.clips must be a positive integer, got 0"):
        _probe(encoder, tmp_path / "bad.json", "--test_views", "{clips: 0, crops: 3}")
    with pytest.raises(ValueError, match="protocol='svm'"):
        _probe(encoder, tmp_path / "svm.json", "--protocol", "svm", "--test_views", "{clips: 2, crops: 3}")


def test_one_fold_is_refused_before_any_feature_is_extracted(encoder, tmp_path, monkeypatch):
    monkeypatch.setenv("VTREP_DEBUG", "1")
    import vtrep.eval.probe_cli as probe_cli

    def never(*args, **kwargs):
        raise AssertionError("the encoder was loaded before folds was checked")

    monkeypatch.setattr(probe_cli, "load_encoder", never)
    for folds in ("1", "0"):
        with pytest.raises(ValueError, match=f"folds must be an integer >= 2, got {folds}"):
            _probe(encoder, tmp_path / "folds.json", "--folds", folds)
    assert not (tmp_path / "folds.json").exists()
