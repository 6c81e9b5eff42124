"""A normal ``vtrep`` call prints nothing but its run: no library tips or warnings, vtrep's own classes in
``fit --help``, each run's ``config.yaml`` in its own folder, a missing path as one short message, and a
CPU thread count that leaves loader workers a core each.

The command-line checks run ``vtrep`` as a subprocess from a temporary folder, as a user runs it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vtrep.hardware import THREADS_ENV, default_num_threads, num_threads_setting

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = str(ROOT / "configs/experiment/quickstart.yaml")
WANDB = str(ROOT / "configs/trainer/wandb.yaml")
NOISE = re.compile(r"warn|\btips?\b|💡", re.IGNORECASE)  # Warning, UserWarning, warn(...), "Tip:"


def vtrep(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    env.pop("VTREP_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "vtrep", *args], capture_output=True, text=True, timeout=600,
                          cwd=cwd, env=env)


def test_quickstart_prints_no_warning_or_tip(tmp_path):
    for _ in range(2):  # the second run must not trip over what the first left (a last.ckpt, say)
        result = vtrep("fit", "--config", QUICKSTART, "--trainer.fast_dev_run", "2", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        noisy = [line for line in (result.stdout + result.stderr).splitlines() if NOISE.search(line)]
        assert not noisy, "\n".join(noisy)
        assert "Epoch 0/0" in result.stdout + result.stderr  # the progress bar still shows the epoch bound
    assert not (tmp_path / "runs/checkpoints").exists()  # fast_dev_run: "checkpointing is suppressed"


def test_fit_help_names_vtrep_tasks_and_datamodules(tmp_path):
    result = vtrep("fit", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())  # argparse wraps the help lines
    model = text[text.index("--model CONFIG"):text.index("--data.help")]
    data = text[text.index("--data CONFIG"):text.index("--optimizer.help")]
    for name in ("VideoMAETask", "SeriesMAETask", "SeriesForecastTask", "TS2VecTask", "SAETask"):
        assert f"vtrep.tasks.{name}" in model, model
    for name in ("SyntheticVideoDataModule", "VideoDataModule", "SeriesClassificationDataModule",
                 "ForecastingDataModule", "FeatureDataModule"):
        assert f"datamodules.{name}" in data, data
    assert "PretrainTask" not in model and "lightning.LightningModule" not in model


def test_wandb_run_config_lands_in_its_own_folder(tmp_path):
    env = {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path), "WANDB_SILENT": "true"}
    result = vtrep("fit", "--config", QUICKSTART, "--config", WANDB, "--trainer.max_steps", "1",
                   "--trainer.limit_val_batches", "0",
                   "--trainer.enable_progress_bar", "false", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "runs/config.yaml").exists()  # the folder every W&B run shares
    configs = list((tmp_path / "runs/vtrep").glob("*/config.yaml"))
    assert len(configs) == 1, list((tmp_path / "runs").rglob("*"))
    assert (configs[0].parent / "encoder").is_dir()  # the same folder as the run's other artefacts
    assert "WandbLogger" in configs[0].read_text()


@pytest.mark.parametrize("args", [
    ["fit", "--config", QUICKSTART, "--ckpt_path", "nope.ckpt"],
    ["probe", "--encoder", "nope", "--data", "datamodules.SyntheticVideoDataModule"],
    ["extract", "--encoder", "nope", "--data", "datamodules.SyntheticVideoDataModule", "--output", "out"],
    ["fit", "--config", QUICKSTART, "--config", "features.yaml"],
], ids=["ckpt_path", "probe_encoder", "extract_encoder", "data_folder"])
def test_missing_path_is_one_short_message(tmp_path, args):
    (tmp_path / "features.yaml").write_text("data:\n  class_path: datamodules.FeatureDataModule\n"
                                            "  init_args: {root: nope}\n")
    result = vtrep(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "Union" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "nope" in errors[0], result.stderr
    assert len(result.stderr.strip().splitlines()) <= 3, result.stderr  # with "Seed set to 0" before it


def test_default_threads_leave_a_core_per_loader_worker():
    assert default_num_threads(cores=2, num_workers=1) == 1
    assert default_num_threads(cores=16, num_workers=4) == 12
    assert default_num_threads(cores=2, num_workers=8) == 1  # never below one thread
    assert default_num_threads(cores=16, num_workers=2, processes=2) == 6  # CPU DDP: each rank its share
    assert num_threads_setting("cpu", 0, env={}) >= 1


def test_thread_setting_overrides():
    assert num_threads_setting("cpu", 1, env={THREADS_ENV: "3"}) == 3
    assert num_threads_setting("other", 1, env={THREADS_ENV: "3"}) == 3
    assert num_threads_setting("other", 1, env={}) is None  # GPU runs keep torch's default
    assert num_threads_setting("cpu", 1, env={"OMP_NUM_THREADS": "4"}) is None  # the user's own choice stays
    with pytest.raises(ValueError, match=THREADS_ENV):
        num_threads_setting("cpu", 1, env={THREADS_ENV: "0"})
