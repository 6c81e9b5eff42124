"""``vtrep benchmark quickstart``: the quickstart's fit + probe per seed, the same numbers as the two commands."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vtrep.benchmark.quickstart import benchmark_quickstart, summary_markdown

ROOT = Path(__file__).resolve().parents[2]
TINY_FIT = ["--data.init_args.num_per_class", "4", "--data.init_args.num_workers", "0", "--trainer.max_epochs", "1",
            "--trainer.check_val_every_n_epoch", "1"]


def tiny_probe_config(tmp_path: Path) -> Path:
    config = yaml.safe_load((ROOT / "configs/probe/quickstart.yaml").read_text())
    config["data"]["init_args"].update(num_per_class=4, batch_size=8)
    config["epochs"] = 3
    path = tmp_path / "probe.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.slow  # four vtrep processes (the suite's fit + probe, then the same two by hand): ~1 min here
def test_suite_gives_the_accuracies_of_the_separate_commands_and_resumes(tmp_path, monkeypatch):
    monkeypatch.setenv("VTREP_CACHE", str(tmp_path / "cache"))
    probe = tiny_probe_config(tmp_path)
    out = tmp_path / "suite"
    results = benchmark_quickstart(str(out), seeds=[1], probe_config=str(probe), fit_args=TINY_FIT, progress=False)
    row = next(csv.DictReader((out / "results.csv").open()))
    assert set(row) == {"dataset", "seed", "pretrained", "random_init", "difference"} and row["seed"] == "1"

    by_hand = tmp_path / "by_hand"
    env = {**os.environ, "VTREP_CACHE": str(tmp_path / "cache")}
    subprocess.run([sys.executable, "-m", "vtrep", "fit", "--config", str(ROOT / "configs/experiment/quickstart.yaml"),
                    *TINY_FIT, "--seed_everything", "1", "--trainer.default_root_dir", str(by_hand),
                    "--trainer.logger.init_args.save_dir", str(by_hand), "--trainer.enable_progress_bar", "false"],
                   check=True, env=env, capture_output=True)
    encoder = next(by_hand.rglob("encoder"))
    subprocess.run([sys.executable, "-m", "vtrep", "probe", "--config", str(probe), "--encoder", str(encoder),
                    "--seed", "1", "--output", str(tmp_path / "probe.json")], check=True, env=env, capture_output=True)
    separate = json.loads((tmp_path / "probe.json").read_text())
    assert results[0]["pretrained"] == separate["pretrained"]["accuracy"]
    assert results[0]["random_init"] == separate["random_init"]["accuracy"]

    summary = (out / "summary.md").read_text()
    assert f"--probe_config {probe}" in summary and "--seeds '[1]'" in summary
    fit_log = out / "quickstart" / "seed_1" / "fit.log"
    stamp = fit_log.stat().st_mtime_ns
    assert benchmark_quickstart(str(out), seeds=[1], probe_config=str(probe), fit_args=TINY_FIT,
                                progress=False) == results
    assert fit_log.stat().st_mtime_ns == stamp  # resumed: read back, not refitted


def test_summary_has_a_row_per_seed_and_the_mean():
    rows = [{"seed": s, "pretrained": p, "random_init": r, "difference": p - r, "fit_seconds": 100.0,
             "probe_seconds": 20.0, "num_train": 800, "num_test": 200}
            for s, p, r in ((0, 0.70, 0.30), (1, 0.60, 0.30), (2, 0.65, 0.35))]
    text = summary_markdown(rows, "vtrep benchmark quickstart --seeds '[0,1,2]' --output OUT")
    assert "| 1 | 60.0 | 30.0 | +30.0 | 100 s | 20 s |" in text
    assert "| mean ± std | 65.0 ± 5.0 | 31.7 ± 2.9 | 33.3 ± 5.8 | | |" in text


def test_a_missing_config_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="probe_config='.*nope.yaml' does not exist"):
        benchmark_quickstart(str(tmp_path / "out"), probe_config=str(tmp_path / "nope.yaml"))
