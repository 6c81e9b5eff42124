"""``vtrep probe`` on a saved encoder and generated clips, and on the real fight_surv clips."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from vtrep.backbones import create_video_vit
from vtrep.cli import main
from vtrep.io.pretrained import save_pretrained


@pytest.fixture(autouse=True)
def _clean_argv(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["vtrep"])


def test_probe_on_generated_clips(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VTREP_CACHE", str(tmp_path / "cache"))
    save_pretrained(create_video_vit("micro", img_size=32, num_frames=8, depth=1), tmp_path / "encoder")
    main(["probe", "--encoder", str(tmp_path / "encoder"), "--data", "datamodules.SyntheticVideoDataModule",
          "--data.init_args.num_per_class", "4", "--data.init_args.num_frames", "8", "--data.init_args.size", "32",
          "--data.init_args.img_size", "32", "--data.init_args.val_fraction", "0.5",
          "--epochs", "5", "--output", str(tmp_path / "probe.json")])
    out = capsys.readouterr().out
    assert "linear probe accuracy [ pretrained]" in out and "linear probe accuracy [random_init]" in out
    results = json.loads((tmp_path / "probe.json").read_text())
    assert results["pretrained"]["num_train"] == 8 and results["pretrained"]["num_test"] == 8
    assert 0.0 <= results["random_init"]["accuracy"] <= 1.0


def test_probe_missing_encoder_is_one_message_naming_it(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["probe", "--encoder", str(tmp_path / "nope"), "--data", "datamodules.SyntheticVideoDataModule"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"encoder='{tmp_path / 'nope'}' is neither a saved encoder folder nor a checkpoint file" in err
    assert "Traceback" not in err


@pytest.mark.slow
def test_probe_on_fight_surv(fight_surv, tmp_path):
    save_pretrained(create_video_vit("micro", img_size=64, num_frames=16), tmp_path / "encoder")
    main(["probe", "--encoder", str(tmp_path / "encoder"), "--data", "datamodules.VideoDataModule",
          "--data.init_args.root", str(fight_surv), "--data.init_args.num_frames", "16",
          "--data.init_args.sampling_rate", "2", "--data.init_args.img_size", "64", "--epochs", "20",
          "--compare_random", "false", "--output", str(tmp_path / "probe.json")])
    results = json.loads((tmp_path / "probe.json").read_text())
    assert results["pretrained"]["num_train"] + results["pretrained"]["num_test"] == 300


def test_attentive_and_knn_protocols_on_generated_clips(tmp_path, monkeypatch):
    monkeypatch.setenv("VTREP_CACHE", str(tmp_path / "cache"))
    save_pretrained(create_video_vit("micro", img_size=32, num_frames=8, depth=1), tmp_path / "encoder")
    data = ["--data", "datamodules.SyntheticVideoDataModule", "--data.init_args.num_per_class", "4",
            "--data.init_args.num_frames", "8", "--data.init_args.size", "32", "--data.init_args.img_size", "32",
            "--data.init_args.val_fraction", "0.5", "--compare_random", "false"]
    for protocol, options in (("attentive", "{lrs: [1e-3], weight_decays: [0.01], self_attention_blocks: 1}"),
                              ("knn", "{k: 3}")):
        main(["probe", "--encoder", str(tmp_path / "encoder"), *data, "--protocol", protocol,
              "--protocol_options", options, "--output", str(tmp_path / f"{protocol}.json")])
        result = json.loads((tmp_path / f"{protocol}.json").read_text())["pretrained"]
        assert result["protocol"] == protocol and 0.0 <= result["accuracy"] <= 1.0
        assert (result["num_train"], result["num_test"]) == (8, 8)
    attentive = json.loads((tmp_path / "attentive.json").read_text())["pretrained"]
    assert (attentive["lr"], attentive["weight_decay"], attentive["num_holdout"]) == (1e-3, 0.01, 0)  # as asked


def test_k_fold_probe_uses_every_clip_once_as_test(tmp_path, monkeypatch, capsys):
    from vtrep.eval.video_probe import stratified_folds

    monkeypatch.setenv("VTREP_CACHE", str(tmp_path / "cache"))
    save_pretrained(create_video_vit("micro", img_size=32, num_frames=8, depth=1), tmp_path / "encoder")
    main(["probe", "--encoder", str(tmp_path / "encoder"), "--data", "datamodules.SyntheticVideoDataModule",
          "--data.init_args.num_per_class", "5", "--protocol", "knn", "--folds", "5", "--compare_random", "false",
          "--output", str(tmp_path / "folds.json")])
    result = json.loads((tmp_path / "folds.json").read_text())["pretrained"]
    assert result["folds"] == 5 and len(result["fold_accuracies"]) == 5 and result["num_train"] == 20
    assert abs(result["accuracy"] - sum(result["fold_accuracies"]) / 5) < 1e-9
    assert "5-fold over 20 items" in capsys.readouterr().out
    labels = torch.arange(4).repeat_interleave(5)
    folds = stratified_folds(labels, 5, seed=0)
    for fold in range(5):  # every fold holds one clip of each class
        assert sorted(labels[torch.from_numpy(folds == fold)].tolist()) == [0, 1, 2, 3]
    monkeypatch.delenv("VTREP_DEBUG", raising=False)
    with pytest.raises(SystemExit) as refused:  # a user's mistake: one line, no traceback
        main(["probe", "--encoder", str(tmp_path / "encoder"), "--data", "datamodules.SyntheticVideoDataModule",
              "--data.init_args.num_per_class", "3", "--folds", "5", "--compare_random", "false"])
    assert refused.value.code == 2
    assert ("vtrep probe: error: folds=5 needs at least 5 clips of every class; the smallest class has 3"
            in capsys.readouterr().err)
