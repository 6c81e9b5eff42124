"""A run killed with SIGKILL mid-epoch and resumed from its last checkpoint ends with the weights of an
uninterrupted run (CPU, deterministic mode): data order, masks and LR schedule all resume exactly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[2]


def fit_args(root: Path, ckpt: Path | None = None, repeats: int = 1) -> list[str]:
    args = [sys.executable, "-m", "vtrep", "fit", "--config", str(ROOT / "configs/experiment/quickstart.yaml"),
            "--data.init_args.num_per_class", "24", "--data.init_args.num_workers", "0",
            "--data.init_args.batch_size", "4", "--trainer.max_epochs", "3", "--trainer.check_val_every_n_epoch", "1",
            # 256 tokens (4-px patches x 2 frames), not the quickstart's 32, and 20 steps an epoch: an epoch must
            # last long enough (~2 s) to be killed in the middle of it
            "--model.init_args.backbone.init_args.patch_size", "4", "--model.init_args.backbone.init_args.tubelet_size", "2",
            "--trainer.limit_val_batches", "1", "--trainer.enable_progress_bar", "false",
            "--trainer.deterministic", "true", "--trainer.default_root_dir", str(root),
            "--trainer.logger.init_args.save_dir", str(root), "--data.init_args.repeats", str(repeats)]
    return args + (["--ckpt_path", str(ckpt)] if ckpt else [])


def run_env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "VTREP_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}


def encoder_weights(root: Path) -> dict[str, torch.Tensor]:
    files = sorted(root.rglob("encoder/model.safetensors"))
    assert files, f"no exported encoder under {root}"
    return load_file(str(files[-1]))


# repeats=2: repeated sampling (two clips per decoded video) resumes exactly too
@pytest.mark.parametrize("repeats", [1, 2])
def test_sigkill_mid_epoch_then_resume_matches_the_uninterrupted_run(tmp_path, repeats):
    env = run_env(tmp_path)
    subprocess.run(fit_args(tmp_path / "whole", repeats=repeats), env=env, check=True, capture_output=True,
                   timeout=600)

    killed = subprocess.Popen(fit_args(tmp_path / "killed", repeats=repeats), env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    first = None
    while first is None and time.time() < deadline and killed.poll() is None:
        # last.ckpt first appears at the end of epoch 0 (20 steps, before the 100-step trigger)
        first = next(iter((tmp_path / "killed").rglob("checkpoints/last.ckpt")), None)
        time.sleep(0.05)
    assert first is not None, "the first epoch's checkpoint never appeared"
    time.sleep(0.5)  # into the second epoch
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    ckpts = sorted((tmp_path / "killed").rglob("checkpoints/*.ckpt"))
    assert ckpts and not list((tmp_path / "killed").rglob("encoder/model.safetensors")), \
        "the run finished before it was killed; the test proves nothing"
    subprocess.run(fit_args(tmp_path / "killed", ckpts[-1], repeats), env=env, check=True, capture_output=True, timeout=600)

    whole, resumed = encoder_weights(tmp_path / "whole"), encoder_weights(tmp_path / "killed")
    assert whole.keys() == resumed.keys()
    for name in whole:
        assert torch.equal(whole[name], resumed[name]), f"{name} differs after resume"


def test_a_kill_while_a_checkpoint_is_written_leaves_the_previous_one_loadable(tmp_path):
    """Lightning writes a checkpoint to a temporary file and renames it: killing the writer at any moment
    leaves the file under the final name complete (the old one or the new one)."""
    path = tmp_path / "last.ckpt"
    script = (
        "import sys, torch\n"
        "from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO\n"
        "io = TorchCheckpointIO()\n"
        "i = 0\n"
        "while True:\n"
        "    io.save_checkpoint({'step': i, 'w': torch.full((2_000_000,), float(i))}, sys.argv[1])\n"
        "    i += 1\n"
    )
    for delay in (0.0, 0.05, 0.2):
        path.unlink(missing_ok=True)
        writer = subprocess.Popen([sys.executable, "-c", script, str(path)])
        deadline = time.time() + 120
        while not path.exists() and time.time() < deadline and writer.poll() is None:
            time.sleep(0.01)
        assert path.exists(), "the writer never completed a first checkpoint"
        time.sleep(delay)  # now it is rewriting the file, at some point of the write
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=60)
        state = torch.load(path, weights_only=True)
        assert torch.equal(state["w"], torch.full((2_000_000,), float(state["step"])))
