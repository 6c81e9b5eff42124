"""``tools/bench/sae_absorption.py``: each (variant, seed) trained by ``vtrep fit`` (SAETask on
PlantedHierarchyDataModule), its result the absorption metrics of the SAE that fit exported; mean ± std over
seeds; a rerun reads finished runs back instead of refitting."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools" / "bench"))
sae_absorption = importlib.import_module("sae_absorption")

TINY = {"steps": 30, "batch_size": 64, "d": 16, "num_parents": 3, "children_per_parent": 2, "active_parents": 2,
        "child_prob": 0.5, "k": 3, "latents": 24, "num_samples": 900}
VARIANTS, SEEDS = ["atm", "topk"], [1, 2]


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("absorption") / "out"
    report = sae_absorption.run(VARIANTS, seeds=SEEDS, output=str(out), **TINY)
    return out, report


def test_every_variant_config_builds_its_sae():
    import vtrep.sae

    for name in sae_absorption.VARIANTS:
        entry = sae_absorption.sae_config(name, d=16, latents=24, k=3, dead_after=640)
        sae = getattr(vtrep.sae, entry["class_path"].rsplit(".", 1)[1])(**entry["init_args"])
        assert (sae.d_in, sae.num_latents) == (16, 24)
    with pytest.raises(ValueError, match="unknown variant"):
        sae_absorption.sae_config("nope", 16, 24, 3, 640)


def test_the_tool_runs_no_training_loop_of_its_own():
    found = subprocess.run(["grep", "-rn", r"\.step()\|backward()", str(ROOT / "tools" / "bench" / "sae_absorption.py")],
                           capture_output=True, text=True)
    assert found.stdout == ""


@pytest.mark.slow  # four vtrep fit processes: ~40 s on a loaded 2-core machine
def test_results_are_those_of_the_exported_saes_and_a_rerun_resumes(bench, monkeypatch):
    from datamodules.features.planted_hierarchy import planted_hierarchy
    from vtrep.benchmark import runner
    from vtrep.sae.io import load_sae
    from vtrep.sae.metrics import absorption_metrics

    out, report = bench
    assert list(report["runs"]) == VARIANTS and all(len(rows) == 2 for rows in report["runs"].values())
    seed = SEEDS[1]
    data = planted_hierarchy(TINY["num_samples"], TINY["d"], TINY["num_parents"], TINY["children_per_parent"],
                             TINY["active_parents"], TINY["child_prob"], zipf=0.5, seed=seed)
    held_out = TINY["num_samples"] - TINY["num_samples"] // 6
    sae = load_sae(out / "atm" / f"seed_{seed}" / "fit" / "sae")
    assert type(sae).__name__ == "ATMSAE"
    with torch.no_grad():
        codes = sae.encode(data.x[held_out:])
    expected = absorption_metrics(codes, sae.W_dec, data.codes[held_out:], data.atoms, data.parent_of)
    row = report["runs"]["atm"][1]
    for key, value in expected.items():
        assert row[key] == pytest.approx(value, abs=1e-9, nan_ok=True)
    config = yaml.safe_load((out / "configs" / f"atm_seed{seed}.yaml").read_text())
    assert config["data"]["class_path"] == "datamodules.PlantedHierarchyDataModule"
    assert config["model"]["init_args"]["sae"]["class_path"] == "vtrep.sae.ATMSAE"
    values = [r["l0"] for r in report["runs"]["topk"]]
    assert report["summary"]["topk"]["l0"]["mean"] == pytest.approx(sum(values) / 2)
    assert "| TopK (k 3) |" in (out / "summary.md").read_text()
    assert json.loads((out / "results.json").read_text()) == json.loads(json.dumps(report))

    def no_fit(*args, **kwargs):
        raise AssertionError("a finished run was fitted again")

    monkeypatch.setattr(runner, "run_fit", no_fit)
    assert sae_absorption.run(VARIANTS, seeds=SEEDS, output=str(out), **TINY) == report
    with pytest.raises(ValueError, match="other settings"):  # a finished run's config is never rewritten
        sae_absorption.run(["topk"], seeds=[1], output=str(out), **{**TINY, "steps": 40})
