"""Score a forecasting fit as ``vtrep benchmark ett`` does: ``vtrep test`` of its best-validation checkpoint, in a
process of its own, on every test window and the way PatchTST's code tests (the last incomplete batch dropped)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

from vtrep.benchmark.runner import Run, RunFailedError, log_tail
from vtrep.io.atomic_write import atomic_write

PATCHTST_TEST_BATCH = 128  # PatchTST's ETT scripts: --batch_size 128, and its test loader drops the last short batch


def best_checkpoint(fit_folder: Path) -> Path:
    """The checkpoint the forecast config's ``ModelCheckpoint(monitor=val/mse, save_top_k=1)`` kept, checked
    against the fit's own ``metrics.csv``: it must be the epoch of lowest ``val/mse`` (the first of equals)."""
    found = sorted((fit_folder / "checkpoints").glob("epoch=*.ckpt"))
    if len(found) != 1:
        raise RuntimeError(f"expected one best-validation checkpoint (epoch=*.ckpt) in {fit_folder / 'checkpoints'}, "
                           f"found {[p.name for p in found]}: the forecast config must keep the best val/mse epoch")
    kept, lowest = checkpoint_epoch(found[0]), lowest_val_mse_epoch(fit_folder / "metrics.csv")
    if kept != lowest:
        raise RuntimeError(f"{found[0]} is epoch {kept}, but {fit_folder / 'metrics.csv'} has the lowest val/mse at "
                           f"epoch {lowest}: the fit's callbacks did not keep its best epoch")
    return found[0]


def checkpoint_epoch(checkpoint: Path) -> int:
    return int(checkpoint.stem.split("epoch=")[1].split("-")[0])


def lowest_val_mse_epoch(metrics_csv: Path) -> int:
    """The epoch of lowest ``val/mse`` in a ``CSVLogger`` file (the first of equal values, as Lightning keeps)."""
    with open(metrics_csv) as file:
        scores = [(float(row["val/mse"]), int(row["epoch"])) for row in csv.DictReader(file) if row.get("val/mse")]
    if not scores:
        raise RuntimeError(f"{metrics_csv} logs no val/mse")
    return min(scores, key=lambda score: score[0])[1]


def vtrep_test_command(fit_folder: Path, checkpoint: Path, folder: Path, version: str = "test",
                       extra: tuple[str, ...] = ()) -> list[str]:
    """``vtrep test`` of ``checkpoint`` with the fit's own settings (and ``extra``); its metrics go to
    ``<folder>/<version>/metrics.csv``."""
    return [sys.executable, "-m", "vtrep", "test", "--config", str(fit_folder / "config.yaml"),
            "--ckpt_path", str(checkpoint), "--trainer.logger", "lightning.pytorch.loggers.CSVLogger",
            "--trainer.logger.init_args.save_dir", str(folder), "--trainer.logger.init_args.name", "",
            "--trainer.logger.init_args.version", version, "--trainer.enable_progress_bar", "false", *extra]


def run_vtrep_test(fit_folder: Path, checkpoint: Path, version: str = "test", extra: tuple[str, ...] = ()) -> dict:
    """Run :func:`vtrep_test_command` in its own process (output to ``<version>.log``); its test metrics."""
    folder = fit_folder.parent
    with open(folder / f"{version}.log", "w") as log:
        done = subprocess.run(vtrep_test_command(fit_folder, checkpoint, folder, version, extra), stdout=log,
                              stderr=subprocess.STDOUT, env=os.environ.copy(), check=False)
    if done.returncode != 0:
        tail = log_tail(folder / f"{version}.log")
        raise RunFailedError(f"vtrep test in {folder} failed (exit {done.returncode}); {version}.log ends:\n{tail}")
    return read_test_metrics(folder / version / "metrics.csv")


def patchtst_loader_test(fit_folder: Path, checkpoint: Path, batch: int = PATCHTST_TEST_BATCH) -> dict[str, float]:
    """Test MSE / MAE the way PatchTST's code tests (last incomplete batch of ``batch`` windows dropped)."""
    metrics = run_vtrep_test(fit_folder, checkpoint, "test_patchtst_loader",
                             ("--data.init_args.test_drop_last_batch", str(batch)))
    return {"mse_patchtst_loader": metrics["test/mse"], "mae_patchtst_loader": metrics["test/mae"]}


def read_test_metrics(path: Path) -> dict[str, float]:
    """The last logged value of each metric in a ``CSVLogger`` ``metrics.csv``."""
    metrics: dict[str, float] = {}
    with open(path) as file:
        for row in csv.DictReader(file):
            metrics.update({k: float(v) for k, v in row.items() if v not in ("", None)})
    return metrics


def forecast_test(run: Run, fit_folder: Path, batch: int = PATCHTST_TEST_BATCH) -> dict:
    """After the forecasting fit: ``vtrep test`` of its best-validation checkpoint; test MSE and MAE."""
    checkpoint = best_checkpoint(fit_folder)
    metrics = run_vtrep_test(fit_folder, checkpoint)
    epoch = checkpoint_epoch(checkpoint)
    return {"horizon": run.probe["horizon"], "mode": run.probe["mode"], "mse": metrics["test/mse"],
            "mae": metrics["test/mae"], **patchtst_loader_test(fit_folder, checkpoint, batch), "best_epoch": epoch,
            "best_checkpoint": str(checkpoint)}


def with_patchtst_loader(result: dict, folder: Path, batch: int = PATCHTST_TEST_BATCH) -> dict:
    """A finished step's result with the PatchTST-loader test added when it lacks it and its checkpoint is there
    (``result.json`` rewritten atomically with every earlier value kept); else the result as it is."""
    checkpoint = Path(result.get("best_checkpoint", ""))
    if "mse_patchtst_loader" in result or not checkpoint.is_file() or not (folder / "fit").is_dir():
        return result
    result = {**result, **patchtst_loader_test(folder / "fit", checkpoint, batch)}
    atomic_write(folder / "result.json", lambda p: p.write_text(json.dumps(result, indent=2)))
    return result
