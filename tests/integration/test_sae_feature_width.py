"""``vtrep fit`` of an SAE takes ``d_in`` from the features it trains on, and refuses a conflicting one early."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from datamodules.features.shards import FeatureShardWriter
from vtrep.cli import main

ROOT = Path(__file__).resolve().parents[2]
WIDTH = 6


@pytest.fixture(autouse=True)
def _clean_argv(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["vtrep"])


@pytest.fixture(scope="module")
def features(tmp_path_factory) -> tuple[Path, Path]:
    """Train and val token folders of width ``WIDTH``, meta as ``vtrep extract`` writes for video."""
    folders = []
    for split in ("train", "val"):
        root = tmp_path_factory.mktemp(f"tokens_{split}")
        writer = FeatureShardWriter(root, ["clip", "t", "h", "w", "label"], shard_rows=64)
        clip = torch.arange(96) // 8
        zeros = torch.zeros_like(clip)
        writer.add(torch.randn(96, WIDTH), torch.stack([clip, zeros, zeros, zeros, clip % 2], dim=1))
        writer.close()
        folders.append(root)
    return folders[0], folders[1]


def sae_fit(features: tuple[Path, Path], out: Path, *extra: str) -> list[str]:
    """The shipped SAE experiment (its SAE piece has no d_in) on tiny features, one step."""
    train, val = features
    return ["fit", "--config", str(ROOT / "configs/experiment/sae_fight_surv.yaml"),
            "--data.init_args.root", str(train), "--data.init_args.val_root", str(val),
            "--data.init_args.batch_size", "32", "--model.init_args.sae.init_args.num_latents", "12",
            "--model.init_args.sae.init_args.k", "2", "--trainer.max_steps", "1", "--trainer.max_epochs", "1",
            "--trainer.check_val_every_n_epoch", "1", "--trainer.enable_progress_bar", "false",
            "--trainer.default_root_dir", str(out), "--trainer.logger.init_args.save_dir", str(out), *extra]


def test_the_shipped_sae_piece_leaves_d_in_to_the_features():
    assert "d_in" not in (ROOT / "configs/sae/topk_16x_k32.yaml").read_text().split("init_args:", 1)[1]


def test_an_sae_fit_without_d_in_takes_the_feature_width(features, tmp_path):
    main(sae_fit(features, tmp_path / "runs"))
    exported = list((tmp_path / "runs").rglob("sae/config.json"))
    assert len(exported) == 1
    assert json.loads(exported[0].read_text())["config"]["d_in"] == WIDTH


def test_a_matching_explicit_d_in_is_kept(features, tmp_path):
    main(sae_fit(features, tmp_path / "runs", "--model.init_args.sae.init_args.d_in", str(WIDTH)))
    assert list((tmp_path / "runs").rglob("sae/config.json"))


def test_a_conflicting_d_in_is_refused_before_training_naming_both_widths_and_the_folder(features, tmp_path,
                                                                                          capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(sae_fit(features, tmp_path / "runs", "--model.init_args.sae.init_args.d_in", "64"))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert (f"model.init_args.sae.init_args.d_in=64 but the features in {features[0]} have width {WIDTH}"
            in " ".join(err.split()))
    assert not (tmp_path / "runs").exists()  # nothing trained, no run folder


def test_planted_rows_give_their_width_and_refuse_another(tmp_path, capsys):
    planted = ["--model", "vtrep.tasks.SAETask", "--model.sae", "vtrep.sae.TopKSAE", "--model.sae.num_latents", "8",
               "--model.sae.k", "2", "--data", "datamodules.PlantedDataModule", "--data.num_samples", "64",
               "--data.d", "5", "--data.num_atoms", "8", "--data.batch_size", "16", "--trainer.max_steps", "1",
               "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
               "--trainer.default_root_dir", str(tmp_path)]
    main(["fit", *planted])
    assert json.loads((tmp_path / "sae" / "config.json").read_text())["config"]["d_in"] == 5
    with pytest.raises(SystemExit):
        main(["fit", *planted, "--model.sae.d_in", "7", "--trainer.default_root_dir", str(tmp_path / "again")])
    assert "d_in=7 but PlantedDataModule's rows have width 5" in " ".join(capsys.readouterr().err.split())


def test_without_d_in_or_a_datamodule_that_knows_it_the_fit_stops_before_building_anything(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--model", "vtrep.tasks.SAETask", "--model.sae", "vtrep.sae.TopKSAE", "--model.sae.num_latents",
              "8", "--data", "datamodules.SeriesClassificationDataModule", "--trainer.default_root_dir", str(tmp_path)])
    assert exit_info.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "model.init_args.sae.init_args.d_in is not given and SeriesClassificationDataModule has no feature_width" in err


def test_feature_vectors_for_a_model_without_an_sae_are_refused(features, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(ROOT / "configs/experiment/series_mae_quickstart.yaml"),
              "--data", "datamodules.FeatureDataModule", "--data.root", str(features[0]),
              "--trainer.default_root_dir", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "SeriesMAETask has no sae.init_args.d_in" in " ".join(capsys.readouterr().err.split())


def test_load_task_rebuilds_an_sae_fit_from_its_config_and_checkpoint(features, tmp_path):
    """config.yaml leaves the linked d_in out; load_task applies the same link, so the task and its weights come back."""
    from vtrep.eval.encoders import load_task
    from vtrep.sae.io import load_sae

    main(sae_fit(features, tmp_path / "runs", "--trainer.enable_checkpointing", "true"))
    config = next((tmp_path / "runs").rglob("config.yaml"))
    assert "d_in" not in config.read_text()
    checkpoint = next((tmp_path / "runs").rglob("*.ckpt"))
    task, data = load_task(str(config), str(checkpoint))
    exported = load_sae(next((tmp_path / "runs").rglob("sae/config.json")).parent)
    assert task.sae.d_in == WIDTH == data.feature_width
    x = torch.randn(16, WIDTH)
    torch.testing.assert_close(task.sae.encode(x), exported.encode(x))
