"""A run killed after its fit finished resumes from its probe; any other killed run starts again from scratch."""

import json

import pytest

from vtrep.benchmark import runner
from vtrep.benchmark.runner import MARKER, Run, run_one


class Killed(Exception):
    pass


@pytest.fixture
def fits(monkeypatch):
    """Counts ``run_fit`` calls; each fake fit leaves an exported encoder as a real one does."""
    calls = []

    def fake_fit(run, folder):
        calls.append(run.seed)
        (folder / "fit" / "encoder").mkdir(parents=True)
        (folder / "fit" / "encoder" / "model.safetensors").write_text(f"fit {len(calls)}")
        return 12.5

    monkeypatch.setattr(runner, "run_fit", fake_fit)
    return calls


def make_run(tmp_path, text="trainer: {max_epochs: 1}\n", seed=0) -> Run:
    config = tmp_path / "fit.yaml"
    config.write_text(text)
    return Run(dataset="Gen", seed=seed, fit_config=str(config), probe={"protocol": "svm"})


def killed_probe(run, fit_folder):
    (fit_folder.parent / "test").mkdir()  # a probe's half-written output, as `vtrep test` leaves it
    raise Killed


def probe(run, fit_folder):
    assert not (fit_folder.parent / "test").exists(), "a killed probe's output was left for the rerun"
    return {"accuracy": 0.75, "weights": (fit_folder / "encoder" / "model.safetensors").read_text()}


def test_a_run_killed_in_its_probe_keeps_its_fit_and_reruns_only_the_probe(tmp_path, fits):
    run = make_run(tmp_path)
    with pytest.raises(Killed):
        run_one(run, tmp_path / "out", killed_probe)
    folder = tmp_path / "out" / "Gen" / "seed_0"
    assert json.loads((folder / "fit.json").read_text())["fit_seconds"] == 12.5
    result = run_one(run, tmp_path / "out", probe)
    assert fits == [0]
    assert result["weights"] == "fit 1" and result["fit_seconds"] == 12.5
    assert (folder / MARKER).is_file() and (folder / "result.json").is_file()


def test_a_finished_fit_with_other_settings_is_not_reused(tmp_path, fits):
    with pytest.raises(Killed):
        run_one(make_run(tmp_path), tmp_path / "out", killed_probe)
    result = run_one(make_run(tmp_path, "trainer: {max_epochs: 2}\n"), tmp_path / "out", probe)
    assert fits == [0, 0]
    assert result["weights"] == "fit 2"


def test_a_fit_killed_before_it_finished_is_redone(tmp_path, monkeypatch, fits):
    fake_fit = runner.run_fit

    def killed_fit(run, folder):
        (folder / "fit" / "encoder").mkdir(parents=True)
        (folder / "fit" / "encoder" / "model.safetensors").write_text("half-written")
        raise Killed

    monkeypatch.setattr(runner, "run_fit", killed_fit)
    with pytest.raises(Killed):
        run_one(make_run(tmp_path), tmp_path / "out", probe)
    assert not (tmp_path / "out" / "Gen" / "seed_0" / "fit.json").exists()
    monkeypatch.setattr(runner, "run_fit", fake_fit)
    result = run_one(make_run(tmp_path), tmp_path / "out", probe)
    assert fits == [0]
    assert result["weights"] == "fit 1"
