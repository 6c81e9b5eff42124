"""``vtrep concepts`` end to end at a tiny size: extract (trained and ``random_init``) -> SAE fit -> metrics + control."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
import torch

from vtrep.cli import main
from vtrep.eval.feature_source import read_source
from vtrep.io.pretrained import save_pretrained

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _clean_argv(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["vtrep"])


@pytest.fixture
def features(tmp_path):
    """Train-split tokens of a tiny VideoViT (grid 2 x 2 x 2) and of its random-init copy."""
    from vtrep.backbones import VideoViT

    torch.manual_seed(0)
    backbone = VideoViT(img_size=16, num_frames=4, patch_size=8, tubelet_size=2, embed_dim=12, depth=1, num_heads=2)
    encoder = save_pretrained(backbone, tmp_path / "encoder")
    data = ["--data.class_path", "datamodules.SyntheticVideoDataModule", "--data.init_args.cache_dir",
            str(tmp_path / "cache"), "--data.init_args.num_per_class", "5", "--data.init_args.num_frames", "4",
            "--data.init_args.size", "16", "--data.init_args.img_size", "16", "--data.init_args.batch_size", "4",
            "--data.init_args.num_workers", "0"]
    for name, extra in (("trained", []), ("random", ["--random_init", "true", "--seed", "3"])):
        main(["extract", "--encoder", str(encoder), "--output", str(tmp_path / name), *data, *extra])
    return tmp_path / "trained", tmp_path / "random"


def _fit_in_process(root: Path, out: Path) -> Path:
    import lightning as L

    from datamodules.features.shards import load_features
    from vtrep.sae import TopKSAE
    from vtrep.sae.io import save_sae
    from vtrep.tasks import SAETask

    tokens, _ = load_features(root)
    trainer = L.Trainer(max_steps=20, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=out, accelerator="cpu")
    task = SAETask(TopKSAE(12, 24, k=3), lr=1e-2, export_sae=False)
    trainer.fit(task, train_dataloaders=torch.utils.data.DataLoader(tokens, batch_size=32, shuffle=True))
    return save_sae(task.sae, out / "sae")


def _check(out: Path, latents: int) -> None:
    summary = json.loads((out / "summary.json").read_text())
    control = json.loads((out / "control" / "summary.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    assert summary["random_init"] is False and control["random_init"] is True
    assert metrics["latents"] == latents and len(metrics["class"]) == latents == len(metrics["eta2"])
    assert set(metrics["class"]) <= {"dynamic", "static", "still", "mixed", "silent"}
    assert 0 < summary["live"] <= latents and 0 < summary["perturbed_items"] <= summary["items"]
    assert abs(sum(summary["share_of_live"][c] for c in ("dynamic", "static", "still", "mixed", "silent")) - 1) < 1e-6
    assert set(summary["probing"]["sae"]) == {"k1", "k2", "k5"} and "dense" in summary["probing"]["raw"]
    table = (out / "summary.md").read_text()
    assert "| metric | trained | random-init control |" in table and "dynamic (share of live)" in table


def test_random_init_extraction_is_recorded_and_differs(features):
    from datamodules.features.shards import load_features

    trained, random = features
    assert read_source(trained)["random_init"] is False and read_source(random)["seed"] == 3
    assert not torch.equal(load_features(trained)[0], load_features(random)[0])


def test_concepts_command_writes_metrics_and_the_control_beside_them(features, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("VTREP_DEBUG", raising=False)
    trained, random = features
    saes = [_fit_in_process(root, tmp_path / f"fit_{root.name}") for root in (trained, random)]
    out = tmp_path / "concepts"
    main(["concepts", "--sae", str(saes[0]), "--features", str(trained), "--output", str(out),
          "--control.sae", str(saes[1]), "--control.features", str(random), "--max_items", "6"])
    _check(out, 24)
    assert json.loads((out / "summary.json").read_text())["perturbed_items"] == 6
    assert "random-init control" in capsys.readouterr().out
    live, candidates = (json.loads((out / "summary.json").read_text())[k] for k in ("live", "candidates"))
    assert candidates["above_control_at"] is not None and 0 <= candidates["count"] <= live
    assert f"above control (count) | {candidates['count']} | – |" in (out / "summary.md").read_text()
    assert len(re.findall(r"<tr data-candidate=", (out / "latents.html").read_text())) == live
    assert (out / "summary.png").stat().st_size > 10_000
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    capsys.readouterr()
    with pytest.raises(SystemExit) as refused:
        main(["concepts", "--sae", str(saes[0]), "--features", str(trained), "--output", str(out)])
    assert refused.value.code == 2
    assert f"vtrep concepts: error: {out} already holds a finished run" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    _report_with_metrics(saes, trained, out, tmp_path)


def _report_with_metrics(saes: list[Path], features: Path, concepts: Path, tmp_path: Path) -> None:
    """The concept page with the concepts folder: the full sortable table, its plot, metrics of reported latents."""
    spec = importlib.util.spec_from_file_location("sae_report", ROOT / "tools/sae_report.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    page = tool.sae_report(str(saes[0]), str(features), str(tmp_path / "report"), top_latents=2, top_items=2,
                           metrics=str(concepts)).read_text()
    live = json.loads((concepts / "summary.json").read_text())["live"]
    assert "All live latents: temporal metrics" in page and "<img src='metrics_summary.png'" in page
    assert len(re.findall(r"<tr data-candidate=", page)) == live
    assert "<th>dynamic score</th>" in page.split("All live latents")[0]  # the reported latents' table too
    with pytest.raises(ValueError, match="measured on the SAE"):
        tool.sae_report(str(saes[1]), str(features), str(tmp_path / "other"), metrics=str(concepts))


def test_concepts_after_vtrep_fit_of_the_shipped_sae_config(features, tmp_path):
    trained, random = features
    saes = []
    for root in (trained, random):
        main(["fit", "--config", str(ROOT / "configs/experiment/sae_concepts_synthetic_sae.yaml"),
              "--data.init_args.root", str(root), "--data.init_args.val_root", str(root),
              "--data.init_args.batch_size", "32", "--model.init_args.sae.init_args.num_latents", "24",
              "--model.init_args.sae.init_args.k", "3", "--trainer.max_epochs", "2",
              "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(tmp_path / root.name),
              "--trainer.logger.init_args.save_dir", str(tmp_path / root.name)])
        saes.append(next((tmp_path / root.name).rglob("sae/config.json")).parent)
    out = tmp_path / "concepts"
    main(["concepts", "--sae", str(saes[0]), "--features", str(trained), "--output", str(out),
          "--control.sae", str(saes[1]), "--control.features", str(random)])
    _check(out, 24)
