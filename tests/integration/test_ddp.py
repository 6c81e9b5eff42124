"""Two-process DDP on CPU (gloo) through ``vtrep fit``: the same training as one process with the same
effective batch, and every training row seen once per epoch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[2]
ROWS, VAL = 1024, 0.125
TRAIN = int(ROWS * (1 - VAL))


def fit_args(root: Path, devices: int, batch_size: int, fixed_init: bool = True,
             csv_logger: bool = False) -> list[str]:
    """``vtrep`` arguments of the planted-SAE fit, from ``fit`` on (test_multinode.py launches them too)."""
    args = ["fit", "--seed_everything", "0",
            "--trainer.accelerator", "cpu", "--trainer.devices", str(devices), "--trainer.max_epochs", "2",
            "--trainer.logger", "false", "--trainer.enable_checkpointing", "false",
            "--trainer.enable_progress_bar", "false", "--trainer.num_sanity_val_steps", "0",
            "--trainer.default_root_dir", str(root), "--trainer.deterministic", "true",
            "--trainer.callbacks+=ddp_probe.SeenRows", f"--trainer.callbacks.out_dir={root / 'seen'}",
            "--model", "vtrep.tasks.SAETask", "--model.sae", "vtrep.sae.TopKSAE",
            "--model.sae.d_in", "16", "--model.sae.num_latents", "64", "--model.sae.k", "4",
            "--model.lr", "1e-3",
            "--data", "datamodules.PlantedDataModule", "--data.num_samples", str(ROWS), "--data.d", "16",
            "--data.num_atoms", "32", "--data.active", "3", "--data.val_fraction", str(VAL),
            "--data.batch_size", str(batch_size)]
    if fixed_init:  # rank 0's first half-batch would initialise differently from one process's whole batch
        args += ["--model.normalise_input", "false", "--model.decoder_bias_init", "none"]
    if devices > 1:
        args += ["--trainer.strategy", "ddp"]
    if csv_logger:  # the run folder is then a collective (trainer.log_dir): rank-0-only writers must not hang
        at = args.index("--trainer.logger")
        args[at:at + 2] = ["--trainer.logger", "lightning.pytorch.loggers.CSVLogger", "--trainer.logger.save_dir",
                           str(root)]
    return args


def probe_env() -> dict[str, str]:
    """One thread per process, and ``ddp_probe`` importable by the children."""
    return {**os.environ, "OMP_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}


def fit(root: Path, devices: int, batch_size: int, fixed_init: bool = True, csv_logger: bool = False) -> None:
    args = [sys.executable, "-m", "vtrep", *fit_args(root, devices, batch_size, fixed_init, csv_logger)]
    result = subprocess.run(args, env=probe_env(), capture_output=True, text=True, timeout=600, cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]


def test_two_process_ddp_matches_one_process_with_the_same_effective_batch(tmp_path):
    (tmp_path / "one").mkdir()
    (tmp_path / "ddp").mkdir()
    fit(tmp_path / "one", devices=1, batch_size=64)
    fit(tmp_path / "ddp", devices=2, batch_size=32)
    assert_same_training(tmp_path / "one", tmp_path / "ddp")


def assert_same_training(one_dir: Path, ddp_dir: Path) -> None:
    """Two ranks at batch 32 (``ddp_dir``) trained as one process at batch 64 (``one_dir``) did."""
    one, ddp = (load_file(str(run / "sae" / "model.safetensors")) for run in (one_dir, ddp_dir))
    for name in one:
        torch.testing.assert_close(ddp[name], one[name], rtol=1e-4, atol=1e-5, msg=f"{name} differs")
    # loss trajectory: the mean of the two ranks' batch losses is the one-process loss of their union
    losses = [json.loads((ddp_dir / "seen" / f"losses{r}.json").read_text()) for r in (0, 1)]
    one_losses = json.loads((one_dir / "seen" / "losses0.json").read_text())
    assert len(losses[0]) == len(losses[1]) == len(one_losses) == 2 * (TRAIN // 64)
    ddp_mean = [(a + b) / 2 for a, b in zip(*losses)]
    assert ddp_mean == pytest.approx(one_losses, rel=1e-4, abs=1e-6)
    seen = [json.loads((ddp_dir / "seen" / f"rank{r}.json").read_text()) for r in (0, 1)]
    alone = json.loads((one_dir / "seen" / "rank0.json").read_text())
    for epoch in ("0", "1"):
        rows = seen[0][epoch] + seen[1][epoch]
        assert len(seen[0][epoch]) == len(seen[1][epoch]) == TRAIN // 2
        assert sorted(rows) == list(range(TRAIN)), "a row was skipped or seen twice in an epoch"
        assert sorted(rows) == sorted(alone[epoch])
    assert seen[0]["0"] != seen[0]["1"]  # a new order each epoch


def test_ranks_start_from_rank_zeros_first_batch_initialisation_and_stay_equal(tmp_path):
    fit(tmp_path, devices=2, batch_size=32, fixed_init=False, csv_logger=True)
    run = tmp_path / "lightning_logs" / "version_0"
    assert (run / "sae" / "model.safetensors").is_file() and list((run / "sae_reports").glob("density_step_*.png"))
    replicas = [load_file(str(tmp_path / "seen" / f"rank{r}.safetensors")) for r in (0, 1)]
    assert float(replicas[0]["sae.input_scale"]) != 1.0  # the data-dependent initialisation ran
    for name in replicas[0]:
        assert torch.equal(replicas[0][name], replicas[1][name]), f"{name} differs between ranks"


def test_videomae_quickstart_trains_under_two_process_ddp_without_changes(tmp_path):
    """The video task as configured for one process, under DDP: replicas stay equal, each rank takes half."""
    args = [sys.executable, "-m", "vtrep", "fit", "--config", str(ROOT / "configs/experiment/quickstart.yaml"),
            "--data.init_args.num_per_class", "4", "--data.init_args.num_workers", "0",
            "--data.init_args.batch_size", "2", "--trainer.max_epochs", "1", "--trainer.limit_val_batches", "1",
            "--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.enable_progress_bar", "false",
            "--trainer.default_root_dir", str(tmp_path), "--trainer.logger.init_args.save_dir", str(tmp_path),
            "--trainer.callbacks+=ddp_probe.SeenRows", f"--trainer.callbacks.out_dir={tmp_path / 'seen'}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "VTREP_CACHE": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    seen = [json.loads((tmp_path / "seen" / f"rank{r}.json").read_text())["0"] for r in (0, 1)]
    assert len(seen[0]) == len(seen[1]) > 0  # one permutation split evenly between the ranks
    replicas = [load_file(str(tmp_path / "seen" / f"rank{r}.safetensors")) for r in (0, 1)]
    for name in replicas[0]:
        assert torch.equal(replicas[0][name], replicas[1][name]), f"{name} differs between ranks"


def test_online_sae_under_two_process_ddp_each_rank_encodes_its_own_clips(tmp_path):
    """Online SAE training (clips -> frozen encoder -> buffer) under DDP: the ranks take the same number of
    steps on different tokens and their SAEs stay equal (one per layer)."""
    from vtrep.backbones.video_vit import VideoViT
    from vtrep.io.pretrained import save_pretrained

    encoder = save_pretrained(VideoViT(img_size=32, num_frames=8, patch_size=8, tubelet_size=2, embed_dim=16,
                                       depth=2, num_heads=2), tmp_path / "encoder")
    clips = "--data.init_args.data.init_args."
    args = [sys.executable, "-m", "vtrep", "fit", "--config", str(ROOT / "configs/experiment/sae_online_quickstart.yaml"),
            "--data.init_args.encoder", str(encoder), "--data.init_args.batch_size", "32",
            "--data.init_args.buffer_rows", "64", f"{clips}num_per_class", "6", f"{clips}num_workers", "0",
            f"{clips}batch_size", "2", "--model.sae.init_args.num_latents", "64", "--model.sae.init_args.k", "4",
            "--trainer.max_epochs", "1", "--trainer.limit_val_batches", "1", "--trainer.devices", "2",
            "--trainer.strategy", "ddp", "--trainer.enable_progress_bar", "false",
            "--trainer.default_root_dir", str(tmp_path), "--trainer.logger.init_args.save_dir", str(tmp_path),
            "--trainer.callbacks+=ddp_probe.SeenRows", f"--trainer.callbacks.out_dir={tmp_path / 'seen'}"]
    env = {**probe_env(), "VTREP_CACHE": str(tmp_path / "cache")}
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    losses = [json.loads((tmp_path / "seen" / f"losses{r}.json").read_text()) for r in (0, 1)]
    assert len(losses[0]) == len(losses[1]) > 2 and losses[0] != losses[1]
    replicas = [load_file(str(tmp_path / "seen" / f"rank{r}.safetensors")) for r in (0, 1)]
    assert {name.split(".")[0] for name in replicas[0]} >= {"sae", "more_saes"}
    for name in replicas[0]:
        assert torch.equal(replicas[0][name], replicas[1][name]), f"{name} differs between ranks"
    run = tmp_path / "sae_online_quickstart" / "version_0"
    assert (run / "sae" / "block1" / "model.safetensors").is_file() and (run / "sae" / "output").is_dir()
