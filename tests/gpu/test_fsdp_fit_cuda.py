"""``vtrep fit`` with FSDP on one GPU: the quickstart config trains a few bf16 steps on the generated clips
and exports its encoder (FSDP gathers the full state dict for the export)."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none is visible)")]


def test_one_gpu_fsdp_fit_trains_and_exports(tmp_path):
    runs = tmp_path / "runs"
    args = [sys.executable, "-m", "vtrep", "fit", "--config", str(ROOT / "configs/experiment/quickstart.yaml"),
            "--data.init_args.num_per_class", "8", "--data.init_args.num_workers", "0",
            "--data.init_args.batch_size", "8", "--trainer.accelerator", "gpu", "--trainer.devices", "1",
            "--trainer.strategy", "fsdp", "--trainer.precision", "bf16-mixed", "--trainer.max_steps", "6",
            "--trainer.max_epochs", "1", "--trainer.limit_val_batches", "1", "--trainer.log_every_n_steps", "1",
            "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(runs),
            "--trainer.logger.init_args.save_dir", str(runs)]
    env = {**os.environ, "VTREP_CACHE": str(tmp_path / "cache")}
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=150, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-4000:]
    assert list(runs.rglob("encoder/model.safetensors")), "fit did not export the encoder"
    metrics = next(runs.rglob("metrics.csv"), None)
    assert metrics is not None, "no CSV log written"
    with metrics.open() as f:
        losses = [float(row["train/loss"]) for row in csv.DictReader(f) if row.get("train/loss")]
    assert losses and all(math.isfinite(v) for v in losses), losses
