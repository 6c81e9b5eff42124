"""``vtrep benchmark quickstart``: the README's main job at several seeds, exactly as a user runs it.

Per seed ``s``: ``vtrep fit --config configs/experiment/quickstart.yaml --seed_everything s``, then
``vtrep probe --config configs/probe/quickstart.yaml --encoder <fit>/encoder --seed s`` in its own process
(the command ``tools/quickstart.sh`` runs, with the seed changed): the linear-probe top-1 of the pretrained
encoder and of the same architecture at random init. Seed 0 is ``tools/quickstart.sh`` itself.
The suite folder, resume and refusal rules are :mod:`vtrep.benchmark.runner`'s.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

from vtrep.benchmark.runner import FitArgs, Run, RunFailedError, cli_list, fit_words, log_tail, run_suite, suite_seeds
from vtrep.io.atomic_write import atomic_write

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
DEFAULT_FIT_CONFIG = CONFIGS / "experiment" / "quickstart.yaml"
DEFAULT_PROBE_CONFIG = CONFIGS / "probe" / "quickstart.yaml"
COLUMNS = ["dataset", "seed", "pretrained", "random_init", "difference"]


def probe_command(run: Run, config: Path, fit_folder: Path, output: Path) -> list[str]:
    """The ``vtrep probe --config config`` a user types after the fit, with the run's seed."""
    return [sys.executable, "-m", "vtrep", "probe", "--config", str(config),
            "--encoder", str(fit_folder / "encoder"), "--seed", str(run.seed), "--output", str(output)]


def probe_run(run: Run, fit_folder: Path, config: Path) -> dict:
    """Linear-probe top-1 of the fit's encoder and of its random-init copy, from ``vtrep probe``'s JSON."""
    output = fit_folder.parent / "probe.json"
    with open(fit_folder.parent / "probe.log", "w") as log:
        done = subprocess.run(probe_command(run, config, fit_folder, output), stdout=log, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        tail = log_tail(fit_folder.parent / "probe.log")
        raise RunFailedError(f"vtrep probe of seed {run.seed} failed (exit {done.returncode}); it ended:\n{tail}")
    result = json.loads(output.read_text())
    pretrained, random_init = result["pretrained"]["accuracy"], result["random_init"]["accuracy"]
    return {"pretrained": pretrained, "random_init": random_init, "difference": pretrained - random_init,
            "num_train": result["pretrained"]["num_train"], "num_test": result["pretrained"]["num_test"]}


def summary_markdown(results: list[dict], command: str) -> str:
    """Per-seed rows, then mean ± std over seeds, in %; fit and probe wall times per seed."""
    lines = [f"`{command}`", "", "| seed | pretrained | random init | difference | fit | probe |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in results:
        lines.append(f"| {r['seed']} | {100 * r['pretrained']:.1f} | {100 * r['random_init']:.1f} | "
                     f"{100 * r['difference']:+.1f} | {float(r['fit_seconds']):.0f} s | {float(r['probe_seconds']):.0f} s |")

    def cell(key: str) -> str:
        values = [100 * r[key] for r in results]
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.fmean(values):.1f} ± {spread:.1f}"

    lines.append(f"| mean ± std | {cell('pretrained')} | {cell('random_init')} | {cell('difference')} | | |")
    lines += ["", f"Linear-probe top-1 in % (4 classes, chance 25%; {results[0]['num_train']} train / "
              f"{results[0]['num_test']} test clips); fit and probe are each one process, wall time on this machine."]
    return "\n".join(lines) + "\n"


def benchmark_quickstart(output: str, seeds: list[int] | None = None, fit_config: str | None = None,
                         probe_config: str | None = None, fit_args: FitArgs | None = None,
                         progress: bool = True) -> list[dict]:
    """The quickstart (fit + linear probe vs random init) at each seed; ``results.csv`` and ``summary.md``.

    Args:
        output: the suite folder; a rerun resumes it.
        seeds: seeds of the fit and the probe (default 0, 1, 2).
        fit_config: the ``vtrep fit`` config (default ``configs/experiment/quickstart.yaml``).
        probe_config: the ``vtrep probe`` config (default ``configs/probe/quickstart.yaml``).
        fit_args: extra ``vtrep fit`` arguments, e.g. ``[--trainer.max_epochs,2]`` for a smoke run.
        progress: show a progress bar over the seeds.
    """
    seeds, fit_args = suite_seeds(seeds), fit_words(fit_args)
    fit, probe = (Path(c) if c else d for c, d in ((fit_config, DEFAULT_FIT_CONFIG), (probe_config, DEFAULT_PROBE_CONFIG)))
    for name, path in (("fit_config", fit), ("probe_config", probe)):
        if not path.is_file():
            raise FileNotFoundError(f"{name}={str(path)!r} does not exist")
    settings = {"config_text": probe.read_text()}  # the text, not the path: a moved checkout still resumes
    runs = [Run("quickstart", int(seed), str(fit.resolve()), tuple(fit_args), settings) for seed in seeds]
    out = Path(output)
    results = run_suite(runs, out, lambda run, folder: probe_run(run, folder, probe.resolve()), progress,
                        columns=COLUMNS)
    command = f"vtrep benchmark quickstart --seeds {cli_list(seeds)}"
    for name, value in (("fit_config", fit_config), ("probe_config", probe_config)):
        command += f" --{name} {value}" if value else ""
    command += f" --fit_args '{json.dumps(list(fit_args))}'" if fit_args else ""
    command += f" --output {output}"
    text = summary_markdown(results, command)
    atomic_write(out / "summary.md", lambda p: p.write_text(text))
    print(text)
    return results
