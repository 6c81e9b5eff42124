"""The ETTh1 benchmark script: end to end on a generated file (default suite) and on the real data (slow)."""

from __future__ import annotations

import importlib.util
import math
import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "tools/bench"


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def write_hourly_csv(path: Path, rows: int = 2000) -> Path:
    rng = np.random.default_rng(0)
    t = np.arange(rows)
    channels = [np.sin(2 * np.pi * t / 24 + phase) + 0.1 * rng.standard_normal(rows) for phase in (0.0, 1.0)]
    start = datetime(2016, 7, 1)
    lines = ["date,A,OT"] + [f"{(start + timedelta(hours=int(i))).isoformat(sep=' ')},{a:.4f},{b:.4f}"
                             for i, a, b in zip(t, *channels)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_etth1_script_on_a_generated_hourly_file(tmp_path, capsys):
    csv = write_hourly_csv(tmp_path / "hourly.csv")
    results = load_script("etth1_forecast").run(
        str(csv), horizons=[24], split="ratio", context_length=48, patch_length=12, d_model=8, depth=1, num_heads=2,
        pretrain_epochs=1, probe_epochs=5, finetune_epochs=5, batch_size=32, finetune_lrs=[1e-3, 1e-4], probe_lr=1e-2,
        output_dir=str(tmp_path / "run"))
    out = capsys.readouterr().out
    assert set(results) == {"24/finetune", "24/probe"}
    # a daily sine with 10% noise: far better than predicting the (standardised) mean, whose MSE is ~1
    assert all(math.isfinite(r["mse"]) and r["mse"] < 0.2 for r in results.values())
    assert "| 24 | finetune |" in out and (tmp_path / "run/results.json").is_file()
    # of the two fine-tuning rates, the one with the lower validation MSE is reported
    tried = results["24/finetune"]["val_mse_by_lr"]
    assert set(tried) == {1e-3, 1e-4} and results["24/finetune"]["val_mse"] == min(tried.values())
    assert {p.name for p in (tmp_path / "run").iterdir()} >= {"24_probe", "24_finetune_0.001", "24_finetune_0.0001"}
    with pytest.raises(ValueError, match="modes must be among"):
        load_script("etth1_forecast").run(str(csv), modes=["zero-shot"])


@pytest.mark.slow
def test_etth1_short_run_is_close_to_published(shared_dir, tmp_path):
    csv = shared_dir / "data/ETT-small/ETTh1.csv"
    if not csv.is_file():
        pytest.skip(f"real-data test: {csv} is absent")
    results = load_script("etth1_forecast").run(str(csv), horizons=[96], modes=["probe"], pretrain_epochs=2,
                                                probe_epochs=3, output_dir=str(tmp_path / "run"))
    assert results["96/probe"]["mse"] < 0.40  # PatchTST/64: 0.370; the full script reaches 0.365
