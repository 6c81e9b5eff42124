"""tools/bench/sae_online.py at its smallest: both paths fit through SAETask, the table and results are written."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "bench"))
import sae_online  # noqa: E402


def test_online_vs_shards_benchmark_writes_rates_and_the_encoder_share(tmp_path, monkeypatch):
    monkeypatch.setenv("VTREP_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "bench"
    result = sae_online.main(output=str(out), backbone=str(Path(__file__).resolve().parents[2] / "configs/model/vit_micro_32px_p8t4.yaml"), clips_per_batch=4,
                             batch_size=64, buffer_rows=128, expansion=2, k=4, steps=3, rounds=2)
    assert set(result["tokens_per_s"]) == {"online", "shards"} and all(v > 0 for v in result["tokens_per_s"].values())
    assert 0 < result["encoder_share"] < 1
    assert json.loads((out / "results.json").read_text())["settings"]["steps"] == 3
    assert "| online (clips → encoder → buffer → SAE) |" in (out / "summary.md").read_text()
    with pytest.raises(FileExistsError, match="results.json exists"):
        sae_online.main(output=str(out))
