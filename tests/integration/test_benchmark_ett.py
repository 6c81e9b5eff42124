"""``vtrep benchmark ett``: the same test MSE as ``vtrep fit`` → ``vtrep fit`` → ``vtrep test`` by hand; resumable.

A small generated hourly CSV (ETT layout: a date column, one column per channel) stands in for ETTh1, with
the README's configs shrunk on the command line (context 48, width 8, one block, ratio split, horizon 8).
"""

from __future__ import annotations

import csv
import shlex
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from datamodules.series.generated import generate_forecasting_table
from vtrep.benchmark import runner
from vtrep.benchmark.ett import (
    DEFAULT_FORECAST_CONFIG,
    DEFAULT_PRETRAIN_CONFIG,
    DEFAULT_SUPERVISED_CONFIG,
    benchmark_ett,
    changed_settings,
    forecast_run,
    reference_forecasting,
    supervised_run,
)
from vtrep.benchmark.forecast_scoring import best_checkpoint

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--model.init_args.encoder.init_args.context_length", "48", "--model.init_args.encoder.init_args.d_model",
         "8", "--model.init_args.encoder.init_args.depth", "1", "--model.init_args.encoder.init_args.num_heads", "2",
         "--data.init_args.context_length", "48", "--data.init_args.split", "ratio", "--data.init_args.batch_size",
         "32", "--trainer.accelerator", "cpu"]
PRETRAIN_ARGS = [*SMALL, "--data.init_args.horizon", "8"]
EPOCHS = {"pretrain_epochs": 2, "probe_epochs": 2, "finetune_epochs": 2}
TEST_BATCH = 3  # the generated CSV has 53 test windows: PatchTST's loader keeps 17 batches of 3, drops 2


def write_csv(path: Path, rows: int = 300, seed: int = 0) -> None:
    table = generate_forecasting_table(num_rows=rows, channels=2, seed=seed)
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["date", *table.channels])
        for stamp, values in zip(table.timestamps, table.values):
            writer.writerow([stamp.isoformat(sep=" "), *(f"{v:.5f}" for v in values)])


def run_suite(root: Path, out: Path) -> list[dict]:
    return benchmark_ett(str(root), str(out), datasets=["Gen"], horizons=[8], seeds=[0], **EPOCHS,
                         pretrain_args=PRETRAIN_ARGS, forecast_args=SMALL, progress=False,
                         patchtst_test_batch=TEST_BATCH)


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    base = tmp_path_factory.mktemp("ett")
    (base / "data").mkdir()
    write_csv(base / "data" / "Gen.csv")
    return base, run_suite(base / "data", base / "out")


def vtrep(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "vtrep", *args], check=True, capture_output=True, cwd=ROOT)


def best(folder: Path) -> Path:
    (found,) = (folder / "checkpoints").glob("epoch=*.ckpt")
    return found


@pytest.mark.slow  # eight vtrep processes: ~2 min on a quiet 2-core machine
def test_suite_equals_the_commands_by_hand(suite, tmp_path):
    base, results = suite
    assert [(r["dataset"], r["seed"], r["horizon"], r["mode"]) for r in results] == [("Gen", 0, 8, "probe"),
                                                                                     ("Gen", 0, 8, "finetune")]
    rows = list(csv.DictReader((base / "out" / "results.csv").open()))
    assert list(rows[0]) == ["dataset", "seed", "horizon", "mode", "mse", "mae", "mse_patchtst_loader",
                             "mae_patchtst_loader", "best_epoch"]
    assert rows[1]["best_epoch"] == str(results[1]["best_epoch"]) and int(rows[1]["best_epoch"]) in (0, 1)
    summary = (base / "out" / "summary.md").read_text()
    assert "| Gen | 8 | finetune | 1 |" in summary
    assert summary.splitlines()[5].endswith(f" | {results[1]['best_epoch']} |")  # the tested epoch of each seed
    assert " --pretrain_epochs 2 --probe_epochs 2 --finetune_epochs 2 --pretrain_args '[" in summary.splitlines()[0]
    data = str(base / "data" / "Gen.csv")
    run = [f"--trainer.default_root_dir={tmp_path}", "--trainer.logger.init_args.save_dir", str(tmp_path),
           "--seed_everything", "0", "--trainer.enable_progress_bar", "false"]
    vtrep("fit", "--config", str(DEFAULT_PRETRAIN_CONFIG), "--data.init_args.path", data, "--trainer.max_epochs", "2",
          *PRETRAIN_ARGS, *run, "--trainer.logger.init_args.version", "pretrain")
    pretrain = tmp_path / "etth1_pretrain" / "pretrain"
    forecast = ["--config", str(DEFAULT_FORECAST_CONFIG), "--data.init_args.path", data, "--data.init_args.horizon",
                "8", "--model.init_args.horizon", "8", "--trainer.max_epochs", "2", *SMALL, *run]
    vtrep("fit", *forecast, "--model.init_args.encoder_checkpoint", str(pretrain / "encoder"),
          "--model.init_args.freeze_encoder", "true", "--model.init_args.lr", "1e-3",
          "--trainer.logger.init_args.version", "probe")
    probe = best(tmp_path / "etth1_forecast" / "probe")
    vtrep("fit", *forecast, "--model.init_args.encoder_checkpoint", str(probe), "--model.init_args.head_checkpoint",
          str(probe), "--model.init_args.lr", "1e-4", "--trainer.logger.init_args.version", "finetune")
    for mode, checkpoint in (("probe", probe), ("finetune", best(tmp_path / "etth1_forecast" / "finetune"))):
        folder = tmp_path / "etth1_forecast" / mode
        vtrep("test", "--config", str(folder / "config.yaml"), "--ckpt_path", str(checkpoint),
              "--trainer.logger.init_args.version", f"{mode}_test")
        metrics = list(csv.DictReader((tmp_path / "etth1_forecast" / f"{mode}_test" / "metrics.csv").open()))[-1]
        result = next(r for r in results if r["mode"] == mode)
        assert float(metrics["test/mse"]) == pytest.approx(result["mse"], rel=1e-6), mode
        assert float(metrics["test/mae"]) == pytest.approx(result["mae"], rel=1e-6), mode
        vtrep("test", "--config", str(folder / "config.yaml"), "--ckpt_path", str(checkpoint),
              "--trainer.logger.init_args.version", f"{mode}_loader", "--data.init_args.test_drop_last_batch",
              str(TEST_BATCH))
        metrics = list(csv.DictReader((tmp_path / "etth1_forecast" / f"{mode}_loader" / "metrics.csv").open()))[-1]
        assert float(metrics["test/mse"]) == pytest.approx(result["mse_patchtst_loader"], rel=1e-6), mode


@pytest.mark.slow
def test_a_rerun_fits_nothing_and_gives_the_same_results(suite, monkeypatch):
    base, results = suite
    before = (base / "out" / "results.csv").read_text()

    def no_fit(*args, **kwargs):
        raise AssertionError("a finished step was fitted again")

    monkeypatch.setattr(runner, "run_fit", no_fit)
    again = run_suite(base / "data", base / "out")
    assert (base / "out" / "results.csv").read_text() == before
    assert [(r["mse"], r["mae"]) for r in again] == [(r["mse"], r["mae"]) for r in results]


@pytest.mark.slow
def test_a_finished_step_without_the_patchtst_loader_test_gains_it_and_keeps_its_values(suite, monkeypatch):
    import json

    base, _ = suite
    path = base / "out" / "Gen" / "seed_0" / "h8_probe" / "result.json"
    full = json.loads(path.read_text())
    older = {k: v for k, v in full.items() if not k.endswith("_patchtst_loader")}
    path.write_text(json.dumps(older))
    monkeypatch.setattr(runner, "run_fit", lambda *a, **k: pytest.fail("a finished step was fitted again"))
    again = run_suite(base / "data", base / "out")
    assert json.loads(path.read_text()) == full
    assert again[0]["mse_patchtst_loader"] == pytest.approx(full["mse_patchtst_loader"])


def test_reference_table_has_patchtst64_for_both_sets():
    refs, source = reference_forecasting()
    assert len(refs) == 8 and "PatchTST" in source and "ICLR 2023" in source
    assert refs[("ETTh1", 96)] == (0.370, 0.400) and refs[("ETTh1", 720)] == (0.447, 0.468)
    assert set(refs) == {(d, h) for d in ("ETTh1", "ETTh2") for h in (96, 192, 336, 720)}


def test_forecast_commands_probe_then_finetune_from_the_probe():
    probe = forecast_run("/d/ETTh1.csv", "ETTh1", 0, "f.yaml", 336, "probe", "/p/encoder", 10, 1e-3, ["--x", "1"])
    assert probe.fit_args == ("--data.init_args.path", "/d/ETTh1.csv", "--data.init_args.horizon", "336",
                              "--model.init_args.horizon", "336", "--model.init_args.encoder_checkpoint", "/p/encoder",
                              "--model.init_args.freeze_encoder", "true", "--model.init_args.lr", "0.001",
                              "--trainer.max_epochs", "10", "--x", "1")
    tune = forecast_run("/d/ETTh1.csv", "ETTh1", 0, "f.yaml", 336, "finetune", "/p/best.ckpt", 10, 1e-4, [])
    args = list(tune.fit_args)
    assert args[args.index("--model.init_args.freeze_encoder") + 1] == "false"
    assert args[args.index("--model.init_args.head_checkpoint") + 1] == "/p/best.ckpt"
    assert args[args.index("--model.init_args.encoder_checkpoint") + 1] == "/p/best.ckpt"
    with pytest.raises(ValueError, match="mode must be one of"):
        forecast_run("/d/a.csv", "a", 0, "f.yaml", 96, "zero_shot", "/p", 1, 1e-3, [])


def test_summary_gives_one_seed_without_a_spread():
    from vtrep.benchmark.ett import summary_markdown

    row = {"dataset": "ETTh1", "horizon": 720, "mode": "supervised", "mse": 0.4706, "mae": 0.4831,
           "mse_patchtst_loader": 0.4626, "mae_patchtst_loader": 0.4778, "best_epoch": 2}
    one = summary_markdown([row], "cmd").splitlines()[4]
    assert one == ("| ETTh1 | 720 | supervised | 1 | 0.471 | 0.483 | 0.447 | 0.468 | 0.463 | 0.478 | 2 |")
    two = summary_markdown([row, {**row, "mse": 0.4806, "best_epoch": 3}], "cmd").splitlines()[4]
    assert "| 2 | 0.476 ± 0.007 | 0.483 ± 0.000 |" in two and two.endswith("| 2, 3 |")


def test_supervised_run_trains_from_scratch():
    run = supervised_run("/d/ETTh2.csv", "ETTh2", 1, "s.yaml", 720, 100, ["--x", "1"])
    assert run.fit_args == ("--data.init_args.path", "/d/ETTh2.csv", "--data.init_args.horizon", "720",
                            "--model.init_args.horizon", "720", "--trainer.max_epochs", "100", "--x", "1")
    assert run.probe == {"horizon": 720, "mode": "supervised"} and run.seed == 1


def test_the_progress_bar_names_each_step_as_it_starts(tmp_path, monkeypatch):
    from vtrep.benchmark import ett

    steps = []

    class Recorder:
        def starting(self, step):
            steps.append(step)

        def __call__(self, result):
            steps.append("done")

    def finished(run, out, probe, folder=None):
        return {"encoder": "e", "best_checkpoint": "c", "mse_patchtst_loader": 0.0}

    monkeypatch.setattr(ett, "run_one", finished)
    plan = ett.Plan("p.yaml", "f.yaml", "s.yaml", dict.fromkeys(["pretrain", "probe", "finetune", "supervised"], 1),
                    {"probe": 1e-3, "finetune": 1e-4}, [], [])
    ett._pretrained_steps(plan, tmp_path, "/d/ETTh2.csv", "ETTh2", 1, [96, 720], ["probe", "finetune"], Recorder())
    ett._supervised_steps(plan, tmp_path, "/d/ETTh2.csv", "ETTh2", 1, [720], Recorder())
    assert [s for s in steps if s != "done"] == [
        "ETTh2 seed 1 pretrain", "ETTh2 seed 1 h96 probe", "ETTh2 seed 1 h96 finetune", "ETTh2 seed 1 h720 probe",
        "ETTh2 seed 1 h720 finetune", "ETTh2 seed 1 h720 supervised"]
    assert steps[1] == "done"  # named before it runs, counted after


@pytest.mark.slow  # three vtrep processes
def test_supervised_mode_pretrains_nothing_and_equals_fit_then_test_by_hand(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    write_csv(tmp_path / "data" / "Gen.csv")
    results = benchmark_ett(str(tmp_path / "data"), str(tmp_path / "out"), datasets=["Gen"], horizons=[8], seeds=[0],
                            modes=["supervised"], supervised_epochs=2, forecast_args=SMALL, progress=False,
                            patchtst_test_batch=TEST_BATCH)
    assert [(r["mode"], r["horizon"]) for r in results] == [("supervised", 8)]
    assert sorted(p.name for p in (tmp_path / "out" / "Gen" / "seed_0").iterdir()) == ["h8_supervised"]
    assert "--modes '[supervised]' --forecast_args" in (tmp_path / "out" / "summary.md").read_text()
    assert " --supervised_epochs 2 " in (tmp_path / "out" / "summary.md").read_text()
    by_hand = tmp_path / "by_hand"
    vtrep("fit", "--config", str(DEFAULT_SUPERVISED_CONFIG), "--data.init_args.path", str(tmp_path / "data" / "Gen.csv"),
          "--data.init_args.horizon", "8", "--model.init_args.horizon", "8", "--trainer.max_epochs", "2", *SMALL,
          f"--trainer.default_root_dir={by_hand}", "--trainer.logger.init_args.save_dir", str(by_hand),
          "--trainer.logger.init_args.version", "fit", "--trainer.enable_progress_bar", "false")
    fit = by_hand / "patchtst64_supervised" / "fit"
    vtrep("test", "--config", str(fit / "config.yaml"), "--ckpt_path", str(best(fit)),
          "--trainer.logger.init_args.version", "test")
    metrics = list(csv.DictReader((by_hand / "patchtst64_supervised" / "test" / "metrics.csv").open()))[-1]
    assert float(metrics["test/mse"]) == pytest.approx(results[0]["mse"], rel=1e-6)


def test_the_summary_command_names_every_setting_that_is_not_the_default():
    defaults = dict(pretrain_config=None, forecast_config=None, pretrain_epochs=10, probe_epochs=10,
                    finetune_epochs=10, probe_lr=1e-3, finetune_lr=1e-4, pretrain_args=None, forecast_args=[],
                    patchtst_test_batch=128, supervised_config=None, supervised_epochs=100)
    assert changed_settings(defaults) == ""
    changed = {**defaults, "probe_epochs": 20, "finetune_lr": 5e-5, "forecast_args": ["--a", "1"]}
    assert changed_settings(changed) == " --probe_epochs 20 --finetune_lr 5e-05 --forecast_args '[--a,1]'"


def test_the_tested_checkpoint_must_be_the_lowest_val_mse_epoch(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "metrics.csv").write_text("epoch,step,train/mse,val/mse\n0,9,1.0,\n0,9,,0.7\n1,19,,0.5\n2,29,,0.5\n"
                                          "3,39,,0.6\n")
    (tmp_path / "checkpoints" / "epoch=3-step=40.ckpt").touch()  # what the colliding callbacks left
    with pytest.raises(RuntimeError, match="is epoch 3, but .* lowest val/mse at epoch 1"):
        best_checkpoint(tmp_path)
    (tmp_path / "checkpoints" / "epoch=3-step=40.ckpt").rename(tmp_path / "checkpoints" / "epoch=1-step=20.ckpt")
    assert best_checkpoint(tmp_path).name == "epoch=1-step=20.ckpt"


def test_an_unknown_dataset_is_named_and_nothing_is_written(tmp_path):
    write_csv(tmp_path / "Gen.csv", rows=10)
    with pytest.raises(FileNotFoundError, match=r"datasets \['ETTh2'\] are not under .*available: \['Gen'\]"):
        benchmark_ett(str(tmp_path), str(tmp_path / "out"), datasets=["ETTh2"], progress=False)
    assert not (tmp_path / "out").exists()


def test_the_cli_knows_the_suite():
    from vtrep.benchmark.cli import benchmark_cli

    with pytest.raises(SystemExit) as exit_:
        benchmark_cli(["ett", "--help"])
    assert exit_.value.code == 0


def test_head_checkpoint_starts_the_head_from_a_fit_checkpoint(tmp_path):
    import torch

    from vtrep.backbones import PatchTSTEncoder
    from vtrep.tasks import SeriesForecastTask

    def encoder():
        return PatchTSTEncoder(context_length=48, patch_length=12, stride=12, d_model=8, depth=1, num_heads=2)

    probe = SeriesForecastTask(encoder(), horizon=8, freeze_encoder=True)
    torch.save({"state_dict": probe.state_dict()}, tmp_path / "probe.ckpt")
    tuned = SeriesForecastTask(encoder(), horizon=8, encoder_checkpoint=str(tmp_path / "probe.ckpt"),
                               head_checkpoint=str(tmp_path / "probe.ckpt"))
    for name, value in probe.state_dict().items():
        assert torch.equal(value, tuned.state_dict()[name]), name
    with pytest.raises(ValueError, match="head"):
        SeriesForecastTask(encoder(), horizon=4, head_checkpoint=str(tmp_path / "probe.ckpt"))


def test_a_safetensors_header_length_starting_with_0x80_is_not_taken_for_a_pickle(tmp_path):
    # the pretrained ETTh1 encoder's header is 4992 bytes (0x1380): its first byte is pickle's PROTO opcode
    import torch
    from safetensors.torch import save_file

    from vtrep.io.torch_files import read_state_dict, sniff_format

    path = tmp_path / "model.safetensors"
    for pad in range(512):
        save_file({"w": torch.zeros(2)}, str(path), metadata={"pad": "x" * pad})
        if path.read_bytes()[:1] == b"\x80":
            break
    assert path.read_bytes()[:1] == b"\x80"
    assert sniff_format(path) == "safetensors"
    assert torch.equal(read_state_dict(path)["w"], torch.zeros(2))


def test_the_command_line_passes_numbers_booleans_and_null_on_as_fit_words(tmp_path, monkeypatch):
    # YAML reads '[--x,0.3]' as a string and a float; jsonargparse 4.53 refused the float for list[str]
    from vtrep.benchmark import ett
    from vtrep.benchmark.cli import benchmark_cli

    plans = []

    def run_steps(plan, out, *rest):
        plans.append(plan)
        out.mkdir()
        return []

    monkeypatch.setattr(ett, "_run_steps", run_steps)
    write_csv(tmp_path / "Gen.csv", rows=10)
    benchmark_cli(["ett", "--root", str(tmp_path), "--output", str(tmp_path / "out"), "--datasets", "[Gen]",
                   "--forecast_args", "[--a,0.3,--b,true,--c,null,--d,'0.30',--e,1e-4,--g,'[0.95,0.999]']",
                   "--pretrain_args", "[--f,7]", "--progress", "false"])
    words = ["--a", "0.3", "--b", "true", "--c", "null", "--d", "0.30", "--e", "0.0001", "--g", "[0.95,0.999]"]
    assert plans[0].forecast_args == words and plans[0].pretrain_args == ["--f", "7"]
    command = (tmp_path / "out" / "summary.md").read_text().splitlines()[0].strip("`")
    assert """--pretrain_args '[--f,7]' --forecast_args '[--a,0.3,--b,true,--c,null,--d,0.30,--e,0.0001,--g,"[0.95,0.999]"]'""" in command
    # the printed command reruns as it ran: a list-valued word stays one word ('0.30' is read back as 0.3)
    shutil.rmtree(tmp_path / "out")
    benchmark_cli(shlex.split(command)[2:] + ["--progress", "false"])
    assert plans[1].forecast_args == [w if w != "0.30" else "0.3" for w in words]


def test_parallel_chains_write_results_in_suite_order_whichever_finishes_first(tmp_path, monkeypatch):
    from vtrep.benchmark import ett

    seed_1_done, threads = threading.Event(), set()

    def finished(run, out, probe, folder=None):
        threads.add(threading.current_thread().name)
        if run.probe.get("mode") is None:  # the pretraining; seed 0's ends after all of seed 1
            assert run.seed == 1 or seed_1_done.wait(20), "the chains did not run at the same time"
            return {"encoder": "e"}
        if run.seed == 1 and run.probe == {"horizon": 720, "mode": "supervised"}:
            seed_1_done.set()
        return {"dataset": run.dataset, "seed": run.seed, **run.probe, "mse": 0.1, "best_checkpoint": "c"}

    monkeypatch.setattr(ett, "run_one", finished)
    monkeypatch.setattr(ett, "with_patchtst_loader", lambda result, folder, batch: result)
    write_csv(tmp_path / "Gen.csv", rows=10)
    results = benchmark_ett(str(tmp_path), str(tmp_path / "out"), datasets=["Gen"], horizons=[96, 720],
                            seeds=[0, 1], modes=["finetune", "supervised"], progress=False, jobs=2)
    expected = [(seed, horizon, mode) for seed in (0, 1) for mode, horizon in
                [("finetune", 96), ("finetune", 720), ("supervised", 96), ("supervised", 720)]]
    assert [(r["seed"], r["horizon"], r["mode"]) for r in results] == expected
    with open(tmp_path / "out" / "results.csv") as file:
        assert [(int(r["seed"]), int(r["horizon"]), r["mode"]) for r in csv.DictReader(file)] == expected
    assert len(threads) == 2
    assert "--jobs 2" in (tmp_path / "out" / "summary.md").read_text().splitlines()[0]


@pytest.mark.slow  # twelve vtrep processes
def test_two_jobs_give_the_results_of_one_at_a_time(tmp_path, monkeypatch):
    monkeypatch.setenv("VTREP_NUM_THREADS", "1")  # the same threads both ways, so the same floats
    (tmp_path / "data").mkdir()
    write_csv(tmp_path / "data" / "Gen.csv")
    suites = {jobs: benchmark_ett(str(tmp_path / "data"), str(tmp_path / f"jobs{jobs}"), datasets=["Gen"],
                                  horizons=[8], seeds=[0, 1], modes=["supervised"], supervised_epochs=2,
                                  forecast_args=SMALL, progress=False, patchtst_test_batch=TEST_BATCH, jobs=jobs)
              for jobs in (1, 2)}
    assert [r["seed"] for r in suites[2]] == [0, 1]
    assert [(r["mse"], r["mae"], r["mse_patchtst_loader"]) for r in suites[2]] == [
        (r["mse"], r["mae"], r["mse_patchtst_loader"]) for r in suites[1]]
    assert (tmp_path / "jobs2" / "results.csv").read_text() == (tmp_path / "jobs1" / "results.csv").read_text()
