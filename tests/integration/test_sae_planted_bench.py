"""``tools/bench/sae_planted.py``: each variant trained by ``vtrep fit`` (SAETask on PlantedDataModule), its
result the recovery of the SAE that fit exported; a rerun reads finished variants back instead of refitting."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools" / "bench"))
sae_planted = importlib.import_module("sae_planted")

TINY = {"steps": 50, "batch_size": 64, "d": 16, "num_atoms": 32, "active": 3, "latents": 64, "seed": 1,
        "num_samples": 1200}
VARIANTS = ["topk", "relu_l1"]


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("planted") / "out"
    results = sae_planted.run(VARIANTS, output=str(out), **TINY)
    return out, results


def test_every_variant_config_builds_its_sae():
    import vtrep.sae

    for name in sae_planted.VARIANTS:
        entry = sae_planted.sae_config(name, d=16, latents=64, k=4, dead_after=640)
        cls = getattr(vtrep.sae, entry["class_path"].rsplit(".", 1)[1])
        sae = cls(**entry["init_args"])
        assert (sae.d_in, sae.num_latents) == (16, 64)
    with pytest.raises(ValueError, match="unknown variant"):
        sae_planted.sae_config("nope", 16, 64, 4, 640)


@pytest.mark.slow  # two vtrep fit processes: ~30 s on a loaded 2-core machine
def test_recovery_is_that_of_the_exported_sae(bench):
    from datamodules.features.planted import planted_activations
    from vtrep.sae import SAEMetrics, dictionary_recovery
    from vtrep.sae.io import load_sae

    out, results = bench
    assert list(results) == VARIANTS
    x, atoms = planted_activations(TINY["num_samples"], TINY["d"], TINY["num_atoms"], TINY["active"], zipf=0.5,
                                   seed=TINY["seed"])
    held_out = x[TINY["num_samples"] - TINY["num_samples"] // 6:]
    for name in VARIANTS:
        sae = load_sae(out / name / f"seed_{TINY['seed']}" / "fit" / "sae")
        assert results[name]["recovery"] == pytest.approx(dictionary_recovery(sae.W_dec.detach(), atoms), abs=1e-6)
        metrics = SAEMetrics(sae.num_latents)
        with torch.no_grad():
            codes = sae.encode(held_out)
            metrics.update(held_out, sae.decode(codes), codes)
        assert results[name]["fvu"] == pytest.approx(float(metrics.compute()["fvu"]), rel=1e-5)
        assert results[name]["num_test"] == len(held_out)
        config = yaml.safe_load((out / "configs" / f"{name}_seed{TINY['seed']}.yaml").read_text())
        assert config["model"]["class_path"] == "vtrep.tasks.SAETask"
        assert config["data"]["class_path"] == "datamodules.PlantedDataModule"
        assert config["trainer"]["max_steps"] == TINY["steps"]
    summary = (out / "summary.md").read_text()
    assert "| TopK (k 3) |" in summary and f"{results['topk']['recovery']:.3f}" in summary
    assert json.loads((out / "results.json").read_text())["topk"]["recovery"] == results["topk"]["recovery"]


@pytest.mark.slow  # needs the fixture's two fits
def test_a_rerun_resumes_without_refitting(bench, monkeypatch):
    from vtrep.benchmark import runner

    out, results = bench
    weights = out / "topk" / f"seed_{TINY['seed']}" / "fit" / "sae" / "model.safetensors"
    stamp = weights.stat().st_mtime_ns

    def no_fit(*args, **kwargs):
        raise AssertionError("a finished variant was fitted again")

    monkeypatch.setattr(runner, "run_fit", no_fit)
    again = sae_planted.run(VARIANTS, output=str(out), **TINY)
    assert again == results
    assert weights.stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="other settings"):  # a finished variant's config is never rewritten
        sae_planted.run(["topk"], output=str(out), **{**TINY, "steps": 60})
