"""The shipped YAML configs run through the ``vtrep`` LightningCLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vtrep.cli import main

ROOT = Path(__file__).resolve().parents[2]
TINY_DATA = ["--data.init_args.num_per_class", "3", "--data.init_args.num_workers", "0",
             "--data.init_args.batch_size", "4"]


@pytest.fixture(autouse=True)
def _clean_argv(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["vtrep"])


def run_cli(args: list[str]) -> None:
    main(args)


@pytest.mark.parametrize("experiment", ["quickstart", "adamae_quickstart", "dual_masking_quickstart",
                                        "videomae_long_sparse"])
def test_fast_dev_run_from_shipped_yaml(experiment, tmp_path, monkeypatch):
    monkeypatch.setenv("VTREP_CACHE", str(tmp_path / "cache"))
    run_cli(["fit", "--config", str(ROOT / f"configs/experiment/{experiment}.yaml"), *TINY_DATA,
             "--trainer.fast_dev_run", "2", "--trainer.default_root_dir", str(tmp_path / "runs"),
             "--trainer.logger.init_args.save_dir", str(tmp_path / "runs")])
    # the encoder artefact is exported at the end of fit
    exported = list((tmp_path / "runs").rglob("encoder/model.safetensors"))
    assert exported, "fit did not export the encoder"
    assert list((tmp_path / "runs").rglob("reconstructions/*.png")), "no reconstruction grid written"


def test_validate_with_composed_configs(tmp_path, monkeypatch):
    monkeypatch.setenv("VTREP_CACHE", str(tmp_path / "cache"))
    run_cli(["validate", "--config", str(ROOT / "configs/experiment/quickstart.yaml"), *TINY_DATA,
             "--model.init_args.masking", "vtrep.masking.RandomMasking",
             "--model.init_args.masking.init_args.mask_ratio", "0.75",
             "--trainer.fast_dev_run", "1", "--trainer.default_root_dir", str(tmp_path / "runs"),
             "--trainer.logger.init_args.save_dir", str(tmp_path / "runs")])


@pytest.mark.parametrize("config", ["configs/model/videomae_small.yaml", "configs/model/maest_small.yaml",
                                    "configs/model/adamae_small.yaml", "configs/model/videomae_v2_dual_small.yaml"])
def test_print_config(config, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_cli(["fit", "--config", str(ROOT / "configs/trainer/cpu.yaml"), "--config", str(ROOT / config),
                 "--config", str(ROOT / "configs/data/synthetic.yaml"), "--print_config"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "vtrep.tasks.VideoMAETask" in out and "class_path: datamodules.SyntheticVideoDataModule" in out


def test_console_script_help():
    result = subprocess.run([sys.executable, "-m", "vtrep", "fit", "--help"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and "--print_config" in result.stdout


def test_bad_patch_size_names_parameter(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VTREP_CACHE", str(tmp_path / "cache"))
    with pytest.raises((SystemExit, ValueError)) as info:
        run_cli(["fit", "--config", str(ROOT / "configs/experiment/quickstart.yaml"), *TINY_DATA,
                 "--model.init_args.backbone.init_args.img_size", "30", "--trainer.fast_dev_run", "1"])
    assert "img_size=30 is not divisible by patch_size=8" in str(info.value) + capsys.readouterr().err


@pytest.mark.parametrize("experiment", ["series_mae_quickstart", "pits_quickstart", "ts2vec_quickstart",
                                        "series_mae_sparse"])
def test_series_mae_fast_dev_run(experiment, tmp_path):
    run_cli(["fit", "--config", str(ROOT / f"configs/experiment/{experiment}.yaml"),
             "--data.init_args.generated_per_class", "8", "--trainer.fast_dev_run", "2",
             "--trainer.default_root_dir", str(tmp_path / "runs"),
             "--trainer.logger.init_args.save_dir", str(tmp_path / "runs")])


def test_series_forecast_fast_dev_run(tmp_path):
    run_cli(["fit", "--config", str(ROOT / "configs/experiment/series_forecast_quickstart.yaml"),
             "--trainer.fast_dev_run", "2", "--trainer.default_root_dir", str(tmp_path / "runs"),
             "--trainer.logger.init_args.save_dir", str(tmp_path / "runs")])


@pytest.mark.parametrize("experiment", ["etth1_pretrain", "etth1_forecast"])
def test_etth1_configs_run(experiment, tmp_path, shared_dir, monkeypatch):
    csv = shared_dir / "data/ETT-small/ETTh1.csv"
    if not csv.is_file():
        pytest.skip(f"real-data test: {csv} is absent")
    run_cli(["fit", "--config", str(ROOT / f"configs/experiment/{experiment}.yaml"),
             "--data.init_args.path", str(csv), "--trainer.fast_dev_run", "2",
             "--trainer.default_root_dir", str(tmp_path / "runs"),
             "--trainer.logger.init_args.save_dir", str(tmp_path / "runs")])


def test_wandb_offline_run_holds_metrics_config_and_images(tmp_path, monkeypatch):
    monkeypatch.setenv("VTREP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))  # wandb's own settings and cache stay in the test folder
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb_config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb_cache"))
    run_cli(["fit", "--config", str(ROOT / "configs/experiment/quickstart.yaml"),
             "--config", str(ROOT / "configs/trainer/wandb.yaml"), *TINY_DATA,
             "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
             "--trainer.check_val_every_n_epoch", "1", "--trainer.log_every_n_steps", "1",
             "--trainer.default_root_dir", str(tmp_path / "runs"),
             "--trainer.logger.init_args.save_dir", str(tmp_path / "runs")])
    import wandb

    wandb.finish()
    runs = list((tmp_path / "runs" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, f"expected one offline run, found {runs}"
    record = next(runs[0].glob("run-*.wandb")).read_bytes()
    for key in (b"train/loss", b"val/loss", b"base_lr"):  # metrics and the full config
        assert key in record, f"{key!r} not in the offline run"
    assert list(runs[0].rglob("files/media/images/**/*.png")), "the reconstruction grid was not logged"
    run_id = runs[0].name.rsplit("-", 1)[1]
    # artefacts go to the run's own folder (beside its checkpoints), never to a folder every run shares
    assert (tmp_path / "runs" / "vtrep" / run_id / "encoder" / "model.safetensors").is_file()
    assert list((tmp_path / "runs" / "vtrep" / run_id / "reconstructions").glob("*.png"))
    assert not (tmp_path / "runs" / "encoder").exists()


@pytest.mark.parametrize("trainer", ["cpu", "gpu_bf16", "ddp", "fsdp", "wandb"])
def test_trainer_configs_compose_with_an_experiment(trainer, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_cli(["fit", "--config", str(ROOT / "configs/experiment/quickstart.yaml"),
                 "--config", str(ROOT / f"configs/trainer/{trainer}.yaml"), "--print_config"])
    assert exit_info.value.code == 0
    assert "vtrep.tasks.VideoMAETask" in capsys.readouterr().out
