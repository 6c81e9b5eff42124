"""Run a suite: each (dataset, seed) is one ``vtrep fit`` process, then the probe a user would run on it.

Layout under the suite folder ``out``::

    <dataset>/seed_<s>/fit/            the fit's run folder (config.yaml, checkpoints, encoder/)
    <dataset>/seed_<s>/fit.log         the fit's output
    <dataset>/seed_<s>/fit.json        the finished fit's seconds and settings (written when it exits cleanly)
    <dataset>/seed_<s>/result.json     the probe's result and the settings that made it (last written)
    results.csv                        one row per finished run, in suite order (no timings: reproducible)

A run with a ``result.json`` is finished: a rerun of the suite skips it (resume) if its settings are
the same and refuses to go on if they differ (a finished result is never overwritten). A run folder
without one is a killed run of this runner (it carries the runner's marker): it is started again — from its
probe when its fit finished with the same settings (``fit.json``; the fit is the costly part of most runs),
else from scratch.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from vtrep.checks import non_negative_int
from vtrep.errors import UsageError, UserError
from vtrep.io.atomic_write import atomic_write

MARKER = ".vtrep_benchmark_run"


class RunFailedError(UserError, RuntimeError):
    """A suite's ``vtrep`` child process failed; the message names the run and ends with its log's last lines."""


def log_tail(path: Path, chars: int = 2000) -> str:
    """The end of a child's log for a :class:`RunFailedError` (less the child's own VTREP_DEBUG hint: ours follows)."""
    lines = path.read_text()[-chars:].rstrip().splitlines()
    if lines and lines[-1].startswith("(VTREP_DEBUG=1"):
        lines.pop()
    return "\n".join(lines)
RESULT_COLUMNS = ["dataset", "seed", "protocol", "accuracy", "num_train", "num_test"]



def suite_list(name: str, values: list | None, default: list) -> list:
    """A suite's list argument (datasets, seeds, horizons, ...): ``default`` when not given, else at least one
    value and none twice (a repeated run would only be read back)."""
    values = list(default) if values is None else list(values)
    if not values or len(set(values)) != len(values):
        raise UsageError(f"{name} must list at least one value and none twice; got {values}")
    return values


def suite_seeds(seeds: list[int] | None) -> list[int]:
    """The seeds of a suite (default 0, 1, 2), each an integer >= 0 as ``vtrep fit --seed_everything`` takes."""
    seeds = suite_list("seeds", seeds, [0, 1, 2])
    for seed in seeds:
        non_negative_int("seeds", seed)
    return seeds


FitArgs = list[str | bool | int | float | None]
"""Pass-through ``vtrep fit`` words as the benchmark commands take them. The shell word ``'[--x,0.3]'`` reaches us
as YAML, a string and a number; jsonargparse 4.53 no longer turns the number back into a string for ``list[str]``
(it refused the README's ``--forecast_args``), so numbers, booleans and null are taken and written back as words."""


def fit_words(args: FitArgs | None) -> list[str]:
    """``args`` as ``vtrep fit`` command-line words: ``0.3`` → ``"0.3"``, ``True`` → ``"true"``, ``None`` → ``"null"``."""
    def word(value) -> str:
        if value is None:
            return "null"
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)
    return [word(value) for value in args or []]


def cli_list(values: list) -> str:
    """``values`` as one shell word the benchmark commands parse back as the same list: ``'[a,b]'``.

    A word YAML would read as more than a string (``[0.95,0.999]``, ``a: b``) is written double-quoted, and the
    whole list is quoted for the shell, so the command printed beside a table reruns as it ran.
    """
    def word(value) -> str:
        text = str(value)
        plain = text and text == text.strip() and not any(c in text for c in '[]{},"#\'') and ": " not in text
        return text if plain else json.dumps(text)
    return shlex.quote("[" + ",".join(word(v) for v in values) + "]")

@dataclass(frozen=True)
class Run:
    """One fit + probe: ``vtrep fit --config fit_config *fit_args`` at ``seed``, then ``probe`` on its encoder."""

    dataset: str
    seed: int
    fit_config: str
    fit_args: tuple[str, ...] = ()
    probe: dict = field(default_factory=dict)

    def settings(self) -> dict:
        """What makes the result: the fit config's text, the arguments, the probe settings."""
        return {"fit_config": Path(self.fit_config).read_text(), "fit_args": list(self.fit_args),
                "seed": self.seed, "probe": self.probe}


def run_folder(out: Path, run: Run) -> Path:
    return out / run.dataset / f"seed_{run.seed}"


def finished_result(folder: Path, run: Run) -> dict | None:
    """The saved result of a finished run, or ``None``; a result made with other settings is an error."""
    path = folder / "result.json"
    if not path.is_file():
        return None
    result = json.loads(path.read_text())
    if result.get("settings") != run.settings():
        raise UsageError(f"{path} is a finished result made with other settings; a benchmark never overwrites one: "
                         "choose another --output (or move that folder away to rerun it)")
    return result


def fresh_folder(folder: Path) -> None:
    """An empty run folder; a killed run's leftovers (the runner's marker inside) are removed first."""
    if folder.exists():
        if not (folder / MARKER).is_file():
            raise FileExistsError(f"{folder} exists and was not made by vtrep benchmark; refusing to touch it")
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / MARKER).write_text("made by vtrep benchmark; a run that did not finish is redone "
                                 "(from its probe when fit.json says its fit finished)\n")


def finished_fit(folder: Path, run: Run) -> float | None:
    """Seconds of a finished fit of ``run`` in this killed run's folder, or ``None`` if it has none."""
    path = folder / "fit.json"
    if not (folder / MARKER).is_file() or not path.is_file() or not (folder / "fit").is_dir():
        return None
    record = json.loads(path.read_text())
    return record["fit_seconds"] if record.get("settings") == run.settings() else None


def remove_probe_outputs(folder: Path) -> None:
    """Everything a killed probe may have left beside the finished fit (e.g. a half-written ``vtrep test``)."""
    for entry in folder.iterdir():
        if entry.name in {MARKER, "fit", "fit.log", "fit.json"}:
            continue
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def fit_command(run: Run, folder: Path) -> list[str]:
    """The ``vtrep fit`` a user would type, with the run's seed and its own log folder."""
    return [sys.executable, "-m", "vtrep", "fit", "--config", run.fit_config, *run.fit_args,
            "--seed_everything", str(run.seed), "--trainer.default_root_dir", str(folder),
            "--trainer.logger", "lightning.pytorch.loggers.CSVLogger",
            "--trainer.logger.init_args.save_dir", str(folder), "--trainer.logger.init_args.name", "",
            "--trainer.logger.init_args.version", "fit", "--trainer.enable_progress_bar", "false"]


def run_fit(run: Run, folder: Path) -> float:
    """Run the fit in its own process (as a user does); its output goes to ``fit.log``. Returns seconds."""
    start = time.perf_counter()
    with open(folder / "fit.log", "w") as log:
        done = subprocess.run(fit_command(run, folder), stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
    if done.returncode != 0:
        tail = log_tail(folder / "fit.log")
        raise RunFailedError(f"vtrep fit of {run.dataset} seed {run.seed} failed (exit {done.returncode}); "
                           f"{folder / 'fit.log'} ends:\n{tail}")
    return time.perf_counter() - start


def run_one(run: Run, out: Path, probe: Callable[[Run, Path], dict], folder: Path | None = None) -> dict:
    """The finished result of ``run``: read back when it exists, else fitted, probed and saved.

    ``folder``: the run's folder when a suite has several per (dataset, seed) (default ``run_folder``).
    """
    folder = run_folder(out, run) if folder is None else folder
    result = finished_result(folder, run)
    if result is not None:
        return result
    fit_seconds = finished_fit(folder, run)
    if fit_seconds is not None:
        remove_probe_outputs(folder)
    else:
        fresh_folder(folder)
        fit_seconds = run_fit(run, folder)
        record = {"fit_seconds": fit_seconds, "settings": run.settings()}
        atomic_write(folder / "fit.json", lambda p: p.write_text(json.dumps(record, indent=2)))
    start = time.perf_counter()
    result = {"dataset": run.dataset, "seed": run.seed, **probe(run, folder / "fit")}
    result.update(fit_seconds=round(fit_seconds, 1), probe_seconds=round(time.perf_counter() - start, 1),
                  settings=run.settings())
    atomic_write(folder / "result.json", lambda p: p.write_text(json.dumps(result, indent=2)))
    return result


def write_results_csv(path: Path, results: list[dict], columns: list[str] = RESULT_COLUMNS) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(results)
    atomic_write(path, lambda p: p.write_text(buffer.getvalue()))


def run_suite(runs: list[Run], out: Path, probe: Callable[[Run, Path], dict], progress: bool = True,
              columns: list[str] = RESULT_COLUMNS) -> list[dict]:
    """Every run in order (finished ones read back), ``results.csv`` (``columns``) rewritten after each."""
    from tqdm import tqdm

    out.mkdir(parents=True, exist_ok=True)
    results: list[dict] = []
    bar = tqdm(runs, desc=f"benchmark {out.name}", unit="run", disable=not progress, file=sys.stderr)
    for run in bar:
        bar.set_postfix_str(f"{run.dataset} seed {run.seed}")
        results.append(run_one(run, out, probe))
        write_results_csv(out / "results.csv", results, columns)
    return results


def write_fit_config(path: Path, config: dict, finished: bool) -> str:
    """Write a run's fit ``config`` (YAML) to ``path``, atomically; a finished run's config with other settings is
    never overwritten (choose another output instead). Returns the path as a string."""
    import yaml

    text = yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
    if path.is_file() and path.read_text() != text and finished:
        raise UsageError(f"{path} belongs to a finished run made with other settings; choose another --output")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: tmp.write_text(text))
    return str(path)


def sae_fit_config(seed: int, steps: int, sae: dict, lr: float, datamodule: str, data_args: dict) -> dict:
    """The ``vtrep fit`` config of one SAE bench run: ``SAETask`` with ``sae`` on ``datamodules.<datamodule>``,
    ``steps`` steps on the CPU, no validation or checkpoints (the bench evaluates the exported SAE), no density
    report."""
    return {
        "seed_everything": seed,
        "trainer": {"accelerator": "cpu", "devices": 1, "max_steps": steps, "max_epochs": -1,
                    "limit_val_batches": 0, "num_sanity_val_steps": 0, "enable_checkpointing": False,
                    "enable_model_summary": False, "log_every_n_steps": 100},
        "model": {"class_path": "vtrep.tasks.SAETask", "init_args": {"sae": sae, "lr": lr, "density_report": False}},
        "data": {"class_path": f"datamodules.{datamodule}", "init_args": data_args},
    }


def write_report(out: Path, report: dict, summary_md: str) -> None:
    """A benchmark's ``results.json`` and ``summary.md``, each written atomically."""
    atomic_write(out / "results.json", lambda tmp: tmp.write_text(json.dumps(report, indent=2)))
    atomic_write(out / "summary.md", lambda tmp: tmp.write_text(summary_md))
