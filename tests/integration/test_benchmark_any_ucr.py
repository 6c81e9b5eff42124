"""Any UCR set through the fit + probe chain: a generated set with the archive's awkward properties, tiny.

One generated set holds them all: NaN-padded variable-length series (lengths 12–24), 60 classes
labelled by negative, non-contiguous numbers, and training series cut into pieces (the fit config
sets ``split_train_length`` 8, so the 24-step width is cut into three, some pieces pure padding).
The default suite runs the chain in this process (a short fit, then TS2Vec's SVM probe); the slow
test runs the ``vtrep benchmark ucr`` command itself (one ``vtrep fit`` process, TS2Vec's budget).
"""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import yaml

from datamodules import SeriesClassificationDataModule
from vtrep.backbones import DilatedConvEncoder
from vtrep.eval.series_probe import probe_series
from vtrep.tasks import TS2VecTask

ROOT = Path(__file__).resolve().parents[2]
CLASSES = 60
WIDTH = 24
FIT = {
    "seed_everything": 0,
    "trainer": {"accelerator": "cpu", "devices": 1, "max_steps": 200, "limit_val_batches": 0,
                "num_sanity_val_steps": 0, "enable_model_summary": False, "log_every_n_steps": 10},
    "model": {"class_path": "vtrep.tasks.TS2VecTask", "init_args": {
        "encoder": {"class_path": "vtrep.backbones.DilatedConvEncoder",
                    "init_args": {"input_channels": 1, "output_dim": 8, "hidden_dim": 4, "depth": 1}},
        "max_train_length": 8, "lr": 1.0e-2}},
    "data": {"class_path": "datamodules.SeriesClassificationDataModule",
             "init_args": {"root": None, "name": "generated", "batch_size": 8, "drop_last": True,
                           "split_train_length": 8, "centre_variable_length": True}},
}


def write_awkward_set(root: Path, name: str) -> None:
    """Class ``k`` (label ``5k − 150``): a sine of its own frequency and length, NaN-padded to ``WIDTH``."""
    rng = np.random.default_rng(0)
    folder = root / name
    folder.mkdir(parents=True)
    for split, per_class in (("TRAIN", 2), ("TEST", 1)):
        lines = []
        for k in range(CLASSES):
            length = 12 + k % (WIDTH - 11)
            for _ in range(per_class):
                t = np.arange(length)
                values = np.sin(2 * np.pi * (1 + k) * t / 61 + rng.uniform(0, 0.3)) + 0.05 * rng.normal(size=length)
                cells = [f"{v:.4f}" for v in values] + ["NaN"] * (WIDTH - length)
                lines.append("\t".join([str(5 * k - 150), *cells]))
        (folder / f"{name}_{split}.tsv").write_text("\n".join(lines) + "\n")


class LossLog(L.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


def test_variable_length_sixty_class_set_fits_and_probes(tmp_path):
    write_awkward_set(tmp_path, "Awkward")
    data = SeriesClassificationDataModule(**{**FIT["data"]["init_args"], "root": str(tmp_path), "name": "Awkward"})
    task = TS2VecTask(DilatedConvEncoder(1, output_dim=8, hidden_dim=4, depth=1), max_train_length=8, lr=1e-2,
                      export_encoder=False)
    log = LossLog()
    trainer = L.Trainer(accelerator="cpu", max_steps=30, limit_val_batches=0, logger=False, callbacks=[log],
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(task, datamodule=data)
    assert data.num_classes == CLASSES and data.classes[:2] == ["-150", "-145"]
    assert tuple(data.fit_set.tensors[0].shape[1:]) == (1, 8) and len(data.fit_set) < 3 * 2 * CLASSES  # padding
    assert len(log.losses) == 30 and all(math.isfinite(v) for v in log.losses)  # no NaN step reached the loss
    result = probe_series(task.representation_encoder, data, "svm", revin=False)
    assert (result["num_train"], result["num_test"]) == (2 * CLASSES, CLASSES)
    assert 5 / CLASSES < result["accuracy"] <= 1.0  # finite and well above chance (1/60)


@pytest.mark.slow  # one vtrep benchmark process and its vtrep fit: 25 s on a quiet 2-core machine, 2 min on a busy one
def test_variable_length_sixty_class_set_goes_through_the_benchmark_command(tmp_path):
    write_awkward_set(tmp_path / "archive", "Awkward")
    (tmp_path / "fit.yaml").write_text(yaml.safe_dump(FIT))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "vtrep", "benchmark", "ucr", "--root", str(tmp_path / "archive"),
               "--datasets", "[Awkward]", "--seeds", "[0]", "--output", str(out),
               "--fit_config", str(tmp_path / "fit.yaml"), "--progress", "false"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    [result] = list(csv.DictReader((out / "results.csv").open()))
    assert (result["num_train"], result["num_test"]) == (str(2 * CLASSES), str(CLASSES))
    assert 0.0 <= float(result["accuracy"]) <= 1.0
    run = out / "Awkward" / "seed_0"
    fit_args = json.loads((run / "result.json").read_text())["settings"]["fit_args"]
    assert fit_args[fit_args.index("--trainer.max_steps") + 1] == "200"  # 120 series × 24 steps ≤ 100 000 values
    losses = [float(r["train/loss"]) for r in csv.DictReader((run / "fit" / "metrics.csv").open()) if r["train/loss"]]
    assert len(losses) == 20 and all(math.isfinite(v) for v in losses)  # no NaN step reached the loss
