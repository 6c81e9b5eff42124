"""``vtrep benchmark ucr``: the same number as ``vtrep fit`` → ``vtrep probe``; resumable; never overwrites.

Two small generated sets in the UCR archive layout stand in for the archive; each run is a real
``vtrep fit`` process with TS2Vec's budget rules, then the probe of its exported (averaged) encoder.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from datamodules.series.generated import generate_series_classification
from vtrep.benchmark.ucr import benchmark_ucr, patch_geometry, suite_command, ts2vec_budget

ROOT = Path(__file__).resolve().parents[2]
FIT = {
    "seed_everything": 0,
    "trainer": {"accelerator": "cpu", "devices": 1, "max_steps": 200, "check_val_every_n_epoch": 1000000,
                "num_sanity_val_steps": 0, "enable_model_summary": False},
    "model": {"class_path": "vtrep.tasks.TS2VecTask", "init_args": {
        "encoder": {"class_path": "vtrep.backbones.DilatedConvEncoder",
                    "init_args": {"input_channels": 1, "output_dim": 8, "hidden_dim": 4, "depth": 1}},
        "lr": 1.0e-2}},
    "data": {"class_path": "datamodules.SeriesClassificationDataModule",
             "init_args": {"root": None, "name": "generated", "batch_size": 8}},
}


def write_ucr_set(root: Path, name: str, seed: int) -> None:
    folder = root / name
    folder.mkdir(parents=True)
    for split, offset in (("TRAIN", 0), ("TEST", 100)):
        x, y = generate_series_classification(4, 32, seed=seed + offset)
        lines = ["\t".join([str(int(label) + 1), *(f"{v:.5f}" for v in series[0])]) for series, label in zip(x, y)]
        (folder / f"{name}_{split}.tsv").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    base = tmp_path_factory.mktemp("bench")
    for index, name in enumerate(("GenA", "GenB")):
        write_ucr_set(base / "archive", name, seed=10 * index)
    (base / "fit.yaml").write_text(yaml.safe_dump(FIT))
    results = benchmark_ucr(str(base / "archive"), str(base / "full"), seeds=[0], fit_config=str(base / "fit.yaml"),
                            progress=False)
    return base, results


@pytest.mark.slow  # five vtrep fit processes: ~1 min on a quiet 2-core machine
def test_benchmark_equals_fit_then_probe(archive, tmp_path):
    base, results = archive
    assert [(r["dataset"], r["seed"]) for r in results] == [("GenA", 0), ("GenB", 0)]
    assert (base / "full" / "summary.md").is_file() and (base / "full" / "summary.png").stat().st_size > 0
    root = str(base / "archive")
    fit = [sys.executable, "-m", "vtrep", "fit", "--config", str(base / "fit.yaml"), "--data.init_args.root", root,
           "--data.init_args.name", "GenA", *ts2vec_budget(root, "GenA"), "--seed_everything", "0",
           "--trainer.default_root_dir", str(tmp_path), "--trainer.logger", "false"]
    subprocess.run(fit, check=True, capture_output=True, cwd=ROOT)
    probe = [sys.executable, "-m", "vtrep", "probe", "--encoder", str(tmp_path / "encoder"),
             "--data", "datamodules.SeriesClassificationDataModule", "--data.init_args.root", root,
             "--data.init_args.name", "GenA", "--compare_random", "false", "--output", str(tmp_path / "probe.json")]
    subprocess.run(probe, check=True, capture_output=True, cwd=ROOT)
    accuracy = json.loads((tmp_path / "probe.json").read_text())["pretrained"]["accuracy"]
    assert accuracy == results[0]["accuracy"]


@pytest.mark.slow  # five vtrep fit processes: ~1 min on a quiet 2-core machine
def test_a_killed_suite_resumes_to_the_same_results(archive, tmp_path):
    base, _ = archive
    out = tmp_path / "killed"
    code = ("from vtrep.benchmark.ucr import benchmark_ucr; "
            f"benchmark_ucr({str(base / 'archive')!r}, {str(out)!r}, seeds=[0], fit_config={str(base / 'fit.yaml')!r},"
            " progress=False)")
    suite = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = out / "GenA" / "seed_0" / "result.json"
    deadline = time.monotonic() + 300
    while not first.is_file() and suite.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(suite.pid, signal.SIGKILL)  # the suite and the fit it started for GenB
    suite.wait()
    assert first.is_file() and not (out / "GenB" / "seed_0" / "result.json").is_file()
    benchmark_ucr(str(base / "archive"), str(out), seeds=[0], fit_config=str(base / "fit.yaml"), progress=False)
    assert (out / "results.csv").read_text() == (base / "full" / "results.csv").read_text()


@pytest.mark.slow  # five vtrep fit processes: ~1 min on a quiet 2-core machine
def test_a_finished_result_is_never_overwritten(archive, tmp_path):
    base, _ = archive
    changed = dict(FIT, model={**FIT["model"], "init_args": {**FIT["model"]["init_args"], "lr": 5.0e-3}})
    (tmp_path / "fit.yaml").write_text(yaml.safe_dump(changed))
    before = (base / "full" / "GenA" / "seed_0" / "result.json").read_text()
    with pytest.raises(ValueError, match="finished result made with other settings"):
        benchmark_ucr(str(base / "archive"), str(base / "full"), seeds=[0], fit_config=str(tmp_path / "fit.yaml"),
                      progress=False)
    assert (base / "full" / "GenA" / "seed_0" / "result.json").read_text() == before


def test_budget_follows_ts2vec(tmp_path):
    write_ucr_set(tmp_path, "Small", 0)
    assert ts2vec_budget(str(tmp_path), "Small")[:2] == ["--trainer.max_steps", "200"]
    big = tmp_path / "Big"
    big.mkdir()
    rows = "\n".join("\t".join([str(1 + i % 2), *["0.5"] * 2000]) for i in range(60)) + "\n"
    (big / "Big_TRAIN.tsv").write_text(rows)
    (big / "Big_TEST.tsv").write_text(rows)
    assert ts2vec_budget(str(tmp_path), "Big")[:2] == ["--trainer.max_steps", "600"]  # 120 000 values
    assert np.isclose(int(ts2vec_budget(str(tmp_path), "Small")[-1]), 8)


def test_patch_geometry_sizes_the_encoder_to_each_set(tmp_path):
    write_ucr_set(tmp_path, "Small", 0)  # 32 steps
    prefix = "--model.init_args.encoder.init_args."
    assert patch_geometry(str(tmp_path), "Small", 4) == [prefix + "context_length", "32", prefix + "patch_length", "8",
                                                         prefix + "stride", "8"]
    assert patch_geometry(str(tmp_path), "Small", 16)[3] == "4"  # never under 4 steps a patch
    with pytest.raises(ValueError, match="patches_per_series must be a positive integer"):
        patch_geometry(str(tmp_path), "Small", 0)


def test_the_printed_command_names_every_changed_setting():
    assert suite_command("A", "OUT", None, [0, 1], None, "svm", None) == \
        "vtrep benchmark ucr --root A --seeds '[0,1]' --output OUT"
    command = suite_command("A", "OUT", ["Coffee"], [0], "mae.yaml", "linear", 16)
    assert command == ("vtrep benchmark ucr --root A --datasets '[Coffee]' --fit_config mae.yaml --protocol linear "
                       "--patches_per_series 16 --seeds '[0]' --output OUT")


def test_an_unknown_dataset_is_named_with_the_ones_there(tmp_path):
    write_ucr_set(tmp_path, "GenA", 0)
    with pytest.raises(FileNotFoundError, match=r"datasets \['Missing'\] are not under .*; available: GenA"):
        benchmark_ucr(str(tmp_path), str(tmp_path / "out"), datasets=["Missing"], progress=False)
    assert not (tmp_path / "out").exists()  # nothing is written before the suite can run


@pytest.mark.slow
def test_real_sets_match_published_ts2vec(shared_dir, tmp_path):
    root = shared_dir / "data/UCRArchive_2018"
    if not root.is_dir():
        pytest.skip(f"real-data test: {root} is absent")
    results = benchmark_ucr(str(root), str(tmp_path / "out"), datasets=["Coffee", "GunPoint"], seeds=[0],
                            progress=False)
    published = {"Coffee": 1.0, "GunPoint": 0.987}
    for result in results:
        assert result["accuracy"] >= published[result["dataset"]] - 0.05, result


@pytest.mark.slow  # one vtrep fit process of 200 steps
def test_the_patch_mae_config_runs_on_any_set_width(tmp_path):
    write_ucr_set(tmp_path / "archive", "GenA", 0)  # 32 steps, not the config's 286
    results = benchmark_ucr(str(tmp_path / "archive"), str(tmp_path / "out"), seeds=[0], progress=False,
                            fit_config=str(ROOT / "configs/experiment/series_mae_ucr.yaml"), patches_per_series=4)
    test_rows = len((tmp_path / "archive" / "GenA" / "GenA_TEST.tsv").read_text().splitlines())
    assert 0.0 <= results[0]["accuracy"] <= 1.0 and results[0]["num_test"] == test_rows
    config = yaml.safe_load((tmp_path / "out" / "GenA" / "seed_0" / "fit" / "config.yaml").read_text())
    assert config["model"]["init_args"]["encoder"]["init_args"]["context_length"] == 32
