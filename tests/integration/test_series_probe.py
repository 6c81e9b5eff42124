"""``vtrep fit`` (TS2Vec, generated series) → ``vtrep probe``: the SVM accuracy of the averaged encoder.

The exported folder and the fit checkpoint (with its config) give the same encoder — the weight
average TS2Vec evaluates — and so the same accuracy; the raw iterate would give other features.
"""

from __future__ import annotations

import json
import sys

import pytest
import torch
import yaml

from vtrep.cli import main
from vtrep.eval.encoders import load_encoder, load_task
from vtrep.eval.series_probe import probe_series, split_tensors
from vtrep.eval.series_features import series_representations

DATA = ["--data", "datamodules.SeriesClassificationDataModule", "--data.init_args.root", "null",
        "--data.init_args.generated_per_class", "8", "--data.init_args.generated_length", "32"]


@pytest.fixture(autouse=True)
def _clean_argv(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["vtrep"])


def ts2vec_fit(tmp_path):
    config = {
        "seed_everything": 0,
        "trainer": {"accelerator": "cpu", "devices": 1, "max_steps": 8, "enable_progress_bar": False,
                    "default_root_dir": str(tmp_path / "runs"),
                    "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger",
                               "init_args": {"save_dir": str(tmp_path / "runs"), "name": "ts2vec"}}},
        "model": {"class_path": "vtrep.tasks.TS2VecTask", "init_args": {
            "encoder": {"class_path": "vtrep.backbones.DilatedConvEncoder",
                        "init_args": {"input_channels": 1, "output_dim": 16, "hidden_dim": 8, "depth": 2}},
            "lr": 1.0e-2}},
        "data": {"class_path": "datamodules.SeriesClassificationDataModule",
                 "init_args": {"root": None, "batch_size": 4, "generated_per_class": 8, "generated_length": 32}},
    }
    path = tmp_path / "fit.yaml"
    path.write_text(yaml.safe_dump(config))
    main(["fit", "--config", str(path)])
    run = tmp_path / "runs" / "ts2vec" / "version_0"
    return run, path


def test_fit_then_probe_gives_the_svm_accuracy_of_the_averaged_encoder(tmp_path, capsys):
    run, config = ts2vec_fit(tmp_path)
    ckpt = next((run / "checkpoints").glob("*.ckpt"))
    main(["probe", "--encoder", str(run / "encoder"), *DATA, "--output", str(tmp_path / "folder.json")])
    assert "svm probe accuracy [ pretrained]" in capsys.readouterr().out  # series default: TS2Vec's protocol
    main(["probe", "--encoder", str(ckpt), "--fit_config", str(config), *DATA, "--compare_random", "false",
          "--output", str(tmp_path / "ckpt.json")])
    from_folder = json.loads((tmp_path / "folder.json").read_text())
    from_ckpt = json.loads((tmp_path / "ckpt.json").read_text())
    assert from_folder["pretrained"]["accuracy"] == from_ckpt["pretrained"]["accuracy"]
    assert from_folder["pretrained"]["num_train"] == 32 and from_folder["pretrained"]["num_test"] == 16
    assert 0.0 <= from_folder["random_init"]["accuracy"] <= 1.0

    # the features the probe classified are representation_encoder's, not the iterate's
    task, data = load_task(str(config), str(ckpt))
    module, revin = load_encoder(str(ckpt), str(config))
    x, _ = split_tensors(data, "train")
    probed = series_representations(module, x, revin=revin)
    torch.testing.assert_close(probed, series_representations(task.representation_encoder, x, revin=False))
    assert not torch.allclose(probed, series_representations(task.encoder, x, revin=False))


def test_series_probe_refuses_the_attentive_protocol_and_a_video_datamodule(tmp_path):
    from vtrep.backbones import DilatedConvEncoder
    from vtrep.eval.probe_cli import probe_module

    encoder = DilatedConvEncoder(input_channels=1, output_dim=8, hidden_dim=4, depth=1)
    with pytest.raises(ValueError, match="attentive"):
        probe_module(encoder, False, None, "attentive", 0, {})
    with pytest.raises(ValueError, match="has no labelled `train_set`"):
        probe_series(encoder, _NoSplits(), "svm")


class _NoSplits:
    num_classes = 2

    def prepare_data(self):
        pass

    def setup(self, stage=None):
        pass
