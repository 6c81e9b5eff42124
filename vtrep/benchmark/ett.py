"""``vtrep benchmark ett``: PatchTST's self-supervised ETT protocol through ``vtrep fit`` + ``vtrep test``.

Per dataset and seed, every step one process a user would run:

1. ``pretrain``: ``vtrep fit --config <pretrain_config> --data.init_args.path <root>/<dataset>.csv`` (masked
   patches on the training months; its exported encoder is ``pretrain/fit/encoder``).
2. per horizon ``H``, ``probe``: ``vtrep fit --config <forecast_config>`` with the pretrained encoder frozen
   (``freeze_encoder true``: a linear probe of the flatten head), the epoch of lowest validation MSE kept
   (early stopping), then ``vtrep test --ckpt_path <that checkpoint>``: test MSE / MAE.
3. per horizon, ``finetune``: the same from the probe's best checkpoint (its encoder and head), everything
   trained, then ``vtrep test`` of its best-validation checkpoint.
4. per horizon, ``supervised`` (only when asked for; no pretraining): PatchTST/64 trained from scratch with its
   own recipe (``configs/experiment/patchtst64_supervised.yaml``), then ``vtrep test`` of its best-validation
   checkpoint — the model and training the published figures come from.

Layout under ``output``::

    <dataset>/seed_<s>/pretrain/         fit/ (the run folder), fit.log, result.json
    <dataset>/seed_<s>/h<H>_<mode>/      (mode probe, finetune or supervised) fit/, fit.log, test/ + test.log (every window),
                                         test_patchtst_loader/ + test_patchtst_loader.log, result.json
    results.csv                          dataset, seed, horizon, mode, mse, mae, mse_patchtst_loader, ...
    summary.md                           mean ± std over seeds beside PatchTST/64

Each checkpoint is tested twice: on every test window (``mse``, ``mae``: the figures vtrep reports) and the way
PatchTST's supervised code tests (``*_patchtst_loader``: batches of :data:`PATCHTST_TEST_BATCH` windows, the last
incomplete batch dropped — the Informer-family loader's ``drop_last=True``; ``ForecastingDataModule``'s
``test_drop_last_batch``), because its published figures leave those last windows of the test months out.

Resumable like ``vtrep benchmark ucr`` (:mod:`vtrep.benchmark.runner`): a step with a ``result.json`` is read
back (and must have been made with the same settings), a killed one is redone. A finished step from before the
second test gains it on a rerun when its checkpoint is still there (its own values are kept as they are).
"""

from __future__ import annotations

import csv
import inspect
import statistics
import sys
import threading
from dataclasses import dataclass
from functools import partial
from importlib import resources
from pathlib import Path

from vtrep.benchmark.forecast_scoring import PATCHTST_TEST_BATCH, forecast_test, with_patchtst_loader
from vtrep.benchmark.parallel import run_chains
from vtrep.benchmark.runner import (
    FitArgs,
    Run,
    cli_list,
    fit_words,
    run_one,
    suite_list,
    suite_seeds,
    write_results_csv,
)
from vtrep.checks import positive_int
from vtrep.errors import UsageError
from vtrep.io.atomic_write import atomic_write

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "experiment"
DEFAULT_PRETRAIN_CONFIG = CONFIGS / "etth1_pretrain.yaml"
DEFAULT_FORECAST_CONFIG = CONFIGS / "etth1_forecast.yaml"
DEFAULT_SUPERVISED_CONFIG = CONFIGS / "patchtst64_supervised.yaml"
MODES = ("probe", "finetune", "supervised")
PRETRAINED_MODES = ("probe", "finetune")
RESULT_COLUMNS = ["dataset", "seed", "horizon", "mode", "mse", "mae", "mse_patchtst_loader", "mae_patchtst_loader",
                  "best_epoch"]


def reference_forecasting() -> tuple[dict[tuple[str, int], tuple[float, float]], str]:
    """``({(dataset, horizon): (mse, mae)}, source)`` of ``references/ett.csv`` (``#`` lines are its source)."""
    text = resources.files("vtrep.benchmark").joinpath("references", "ett.csv").read_text()
    source = " ".join(line.lstrip("# ").strip() for line in text.splitlines() if line.startswith("#"))
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    return {(row["dataset"], int(row["horizon"])): (float(row["mse"]), float(row["mae"])) for row in rows}, source


def pretrain_run(csv_path: str, dataset: str, seed: int, config: str, epochs: int, extra: list[str]) -> Run:
    """The pretraining ``vtrep fit`` of one dataset and seed."""
    return Run(dataset, seed, config, ("--data.init_args.path", csv_path, "--trainer.max_epochs", str(epochs),
                                       *extra))


def forecast_run(csv_path: str, dataset: str, seed: int, config: str, horizon: int, mode: str, start: str,
                 epochs: int, lr: float, extra: list[str]) -> Run:
    """The forecasting ``vtrep fit`` of one horizon and mode.

    ``start``: for ``probe`` the pretraining's exported encoder folder (frozen), for ``finetune`` the probe's
    best checkpoint (encoder and head start from it, as PatchTST fine-tunes from its linear probe).
    """
    if mode not in PRETRAINED_MODES:
        raise UsageError(f"mode must be one of {PRETRAINED_MODES}; got {mode!r}")
    args = ["--data.init_args.path", csv_path, "--data.init_args.horizon", str(horizon),
            "--model.init_args.horizon", str(horizon), "--model.init_args.encoder_checkpoint", start,
            "--model.init_args.freeze_encoder", "true" if mode == "probe" else "false",
            "--model.init_args.lr", f"{lr:g}", "--trainer.max_epochs", str(epochs)]
    if mode == "finetune":
        args += ["--model.init_args.head_checkpoint", start]
    return Run(dataset, seed, config, (*args, *extra), {"horizon": horizon, "mode": mode})


def supervised_run(csv_path: str, dataset: str, seed: int, config: str, horizon: int, epochs: int,
                   extra: list[str]) -> Run:
    """The supervised ``vtrep fit`` of one horizon: the forecaster trained from scratch (no pretrained weights)."""
    args = ("--data.init_args.path", csv_path, "--data.init_args.horizon", str(horizon), "--model.init_args.horizon",
            str(horizon), "--trainer.max_epochs", str(epochs), *extra)
    return Run(dataset, seed, config, args, {"horizon": horizon, "mode": "supervised"})


def no_probe(run: Run, fit_folder: Path) -> dict:
    return {"encoder": str(fit_folder / "encoder")}


def _mean_std(rows: list[dict], metric: str) -> str:
    """``mean ± std`` over the rows that have ``metric`` (``—`` when none has it; one value alone, no spread)."""
    values = [float(r[metric]) for r in rows if r.get(metric) not in (None, "")]
    if not values:
        return "—"
    spread = f" ± {statistics.stdev(values):.3f}" if len(values) > 1 else ""
    return f"{statistics.fmean(values):.3f}{spread}" + (f" ({len(values)})" if len(values) != len(rows) else "")


def summary_markdown(results: list[dict], command: str) -> str:
    """Per dataset, horizon and mode: vtrep MSE and MAE (mean ± std over seeds) beside PatchTST/64."""
    refs, source = reference_forecasting()
    groups: dict[tuple[str, int, str], list[dict]] = {}
    for r in results:
        groups.setdefault((r["dataset"], int(r["horizon"]), r["mode"]), []).append(r)
    header = ("| dataset | horizon | mode | seeds | vtrep MSE | vtrep MAE | PatchTST/64 MSE | PatchTST/64 MAE "
              "| vtrep MSE, PatchTST's loader | vtrep MAE, PatchTST's loader | tested epochs |")
    lines = [f"`{command}`", "", header, "| --- " * 11 + "|"]
    for (dataset, horizon, mode), rows in groups.items():
        cells = [_mean_std(rows, metric) for metric in ("mse", "mae")]
        ref = refs.get((dataset, horizon))
        published = [f"{v:.3f}" for v in ref] if ref else ["—", "—"]
        loader = [_mean_std(rows, metric) for metric in ("mse_patchtst_loader", "mae_patchtst_loader")]
        epochs = ", ".join(str(r.get("best_epoch", "—")) for r in rows)
        lines.append(f"| {dataset} | {horizon} | {mode} | {len(rows)} | "
                     + " | ".join(cells + published + loader + [epochs]) + " |")
    seconds = sum(float(r.get("fit_seconds", 0)) + float(r.get("probe_seconds", 0)) for r in results)
    lines += ["", f"{len(results)} forecasting runs, {seconds / 60:.1f} min of forecasting fit + test on this machine "
              "(pretraining not included). vtrep MSE / MAE: every test window. PatchTST's loader: the same "
              f"checkpoints tested in batches of {PATCHTST_TEST_BATCH} with the last incomplete batch dropped, as "
              "PatchTST's supervised code tests (— where a step predates that test). Tested epochs: the "
              "lowest-validation epoch of each seed's fit (0-based). Published: " + source]
    return "\n".join(lines) + "\n"


def changed_settings(settings: dict) -> str:
    """The arguments of ``settings`` that differ from ``benchmark_ett``'s defaults, spelled as the command takes them.

    The command beside a table must be the one that wrote it, so a run with ``--probe_epochs 20`` says so.
    """
    defaults = inspect.signature(benchmark_ett).parameters
    words = []
    for name, value in settings.items():
        if value is None or value == defaults[name].default:
            continue
        if isinstance(value, (list, tuple)):
            value = cli_list(list(value)) if value else None
        if value is not None:
            words.append(f" --{name} {value:g}" if isinstance(value, float) else f" --{name} {value}")
    return "".join(words)


def _check_inputs(root: str, datasets: list[str], pretrain_config: str | None, forecast_config: str | None,
                  supervised_config: str | None) -> tuple[str, str, str, Path]:
    """The three configs (resolved) and the data folder, each checked before anything runs."""
    configs = []
    for name, given, default in (("pretrain_config", pretrain_config, DEFAULT_PRETRAIN_CONFIG),
                                 ("forecast_config", forecast_config, DEFAULT_FORECAST_CONFIG),
                                 ("supervised_config", supervised_config, DEFAULT_SUPERVISED_CONFIG)):
        path = Path(given) if given else default
        if not path.is_file():
            raise FileNotFoundError(f"{name}={str(path)!r} does not exist")
        configs.append(str(path.resolve()))
    root_path = Path(root).resolve()
    missing = [d for d in datasets if not (root_path / f"{d}.csv").is_file()]
    if missing:
        found = sorted(p.stem for p in root_path.glob("*.csv"))
        raise FileNotFoundError(f"datasets {missing} are not under {root} (<name>.csv); available: {found}")
    return configs[0], configs[1], configs[2], root_path


def _defaults(datasets, horizons, seeds, modes) -> tuple[list[str], list[int], list[int], list[str]]:
    datasets = suite_list("datasets", datasets, ["ETTh1", "ETTh2"])
    horizons = suite_list("horizons", horizons, [96, 192, 336, 720])
    for horizon in horizons:
        positive_int("horizons", horizon)
    seeds, modes = suite_seeds(seeds), suite_list("modes", modes, PRETRAINED_MODES)
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        raise UsageError(f"modes must be among {list(MODES)}; got {modes}")
    return datasets, horizons, seeds, modes


@dataclass(frozen=True)
class Plan:
    """What each step of the suite runs: configs, epochs, learning rates and extra ``vtrep fit`` arguments."""

    pretrain_config: str
    forecast_config: str
    supervised_config: str
    epochs: dict[str, int]  # pretrain, probe, finetune, supervised
    lrs: dict[str, float]  # probe, finetune
    pretrain_args: list[str]
    forecast_args: list[str]
    test_batch: int = PATCHTST_TEST_BATCH


def _pretrained_steps(plan: Plan, out: Path, csv_path: str, dataset: str, seed: int, horizons, stages: list[str],
                      report) -> None:
    """Pretraining, then per horizon the probe and (when asked for) fine-tuning from it."""
    base = out / dataset / f"seed_{seed}"
    report.starting(f"{dataset} seed {seed} pretrain")
    run = pretrain_run(csv_path, dataset, seed, plan.pretrain_config, plan.epochs["pretrain"], plan.pretrain_args)
    encoder = run_one(run, out, no_probe, base / "pretrain")["encoder"]
    report(None)
    for horizon in horizons:
        start = encoder
        for mode in stages:
            report.starting(f"{dataset} seed {seed} h{horizon} {mode}")
            run = forecast_run(csv_path, dataset, seed, plan.forecast_config, horizon, mode, start, plan.epochs[mode],
                               plan.lrs[mode], plan.forecast_args)
            folder = base / f"h{horizon}_{mode}"
            result = run_one(run, out, partial(forecast_test, batch=plan.test_batch), folder)
            result = with_patchtst_loader(result, folder, plan.test_batch)
            start = result["best_checkpoint"]
            report(result)


def _supervised_steps(plan: Plan, out: Path, csv_path: str, dataset: str, seed: int, horizons, report) -> None:
    for horizon in horizons:
        report.starting(f"{dataset} seed {seed} h{horizon} supervised")
        run = supervised_run(csv_path, dataset, seed, plan.supervised_config, horizon, plan.epochs["supervised"],
                             plan.forecast_args)
        report(run_one(run, out, partial(forecast_test, batch=plan.test_batch),
                       out / dataset / f"seed_{seed}" / f"h{horizon}_supervised"))


class _Report:
    """The progress bar (the running step, the finished count); keeps the asked-for results in ``results.csv``.

    Results are kept in suite order (dataset, seed, pretrained before supervised, horizon, mode) whichever chain
    finishes first, so a parallel suite writes the same ``results.csv`` as a sequential one.
    """

    def __init__(self, out: Path, modes: list[str], total: int, progress: bool, order: dict[str, list]) -> None:
        from tqdm import tqdm

        self.out, self.modes, self.order, self.results = out, modes, order, []
        self.lock = threading.Lock()
        self.bar = tqdm(total=total, desc=f"benchmark {out.name}", unit="step", disable=not progress, file=sys.stderr)

    def starting(self, step: str) -> None:
        self.bar.set_postfix_str(step)

    def _key(self, result: dict) -> tuple:
        order = self.order
        return (order["datasets"].index(result["dataset"]), order["seeds"].index(result["seed"]),
                result["mode"] == "supervised", order["horizons"].index(result["horizon"]), MODES.index(result["mode"]))

    def __call__(self, result: dict | None) -> None:
        with self.lock:
            self.bar.update()
            if result is not None and result["mode"] in self.modes:
                self.results = sorted([*self.results, result], key=self._key)
                write_results_csv(self.out / "results.csv", self.results, RESULT_COLUMNS)


def _run_steps(plan: Plan, out: Path, root_path: Path, datasets, seeds, horizons, modes, progress: bool,
               jobs: int = 1) -> list[dict]:
    """Every step (finished ones read back), ``jobs`` chains at a time; ``results.csv`` rewritten after each
    reported step."""
    out.mkdir(parents=True, exist_ok=True)
    stages = ["probe", "finetune"] if "finetune" in modes else ["probe"] if "probe" in modes else []
    per_seed = (1 + len(stages) * len(horizons) if stages else 0) + (len(horizons) if "supervised" in modes else 0)
    report = _Report(out, modes, len(datasets) * len(seeds) * per_seed, progress,
                     {"datasets": datasets, "seeds": seeds, "horizons": horizons})

    chains = []  # per (dataset, seed): pretraining and the steps that start from it; each supervised horizon
    for dataset in datasets:
        csv_path = str(root_path / f"{dataset}.csv")
        for seed in seeds:
            if stages:
                chains.append(partial(_pretrained_steps, plan, out, csv_path, dataset, seed, horizons, stages, report))
            if "supervised" in modes:
                chains += [partial(_supervised_steps, plan, out, csv_path, dataset, seed, [horizon], report)
                           for horizon in horizons]
    try:
        run_chains(chains, jobs)
    finally:
        report.bar.close()
    return report.results


def benchmark_ett(root: str, output: str, datasets: list[str] | None = None, horizons: list[int] | None = None,
                  seeds: list[int] | None = None, modes: list[str] | None = None, pretrain_config: str | None = None,
                  forecast_config: str | None = None, pretrain_epochs: int = 10, probe_epochs: int = 10,
                  finetune_epochs: int = 10, probe_lr: float = 1e-3, finetune_lr: float = 1e-4,
                  pretrain_args: FitArgs | None = None, forecast_args: FitArgs | None = None,
                  progress: bool = True, patchtst_test_batch: int = PATCHTST_TEST_BATCH,
                  supervised_config: str | None = None, supervised_epochs: int = 100, jobs: int = 1) -> list[dict]:
    """Pretrain, probe and fine-tune (and / or train supervised) per (dataset, seed, horizon); write ``results.csv``
    and ``summary.md``.

    Args:
        root: the folder holding ``<dataset>.csv`` (ETT layout: a date column, then one column per channel).
        output: the suite folder; a rerun resumes it (finished steps are kept, killed ones redone).
        datasets: CSV names under ``root`` without ``.csv`` (default ETTh1, ETTh2).
        horizons: forecast horizons (default 96, 192, 336, 720).
        seeds: the seeds of each dataset's runs (default 0, 1, 2).
        modes: ``probe`` (frozen encoder, linear head), ``finetune`` (from the probe; needs the probe, which is
            then run and kept but not reported unless asked for) and ``supervised`` (PatchTST/64's own supervised
            training from scratch, no pretraining). Default probe and finetune.
        pretrain_config: the pretraining ``vtrep fit`` config (default ``configs/experiment/etth1_pretrain.yaml``).
        forecast_config: the forecasting config (default ``configs/experiment/etth1_forecast.yaml``); it must keep
            the best ``val/mse`` checkpoint (``ModelCheckpoint(monitor=val/mse, save_top_k=1)``).
        pretrain_epochs, probe_epochs, finetune_epochs: ``--trainer.max_epochs`` of each stage (early stopping
            of the forecast config may end the last two sooner).
        probe_lr, finetune_lr: ``--model.init_args.lr`` of the probe and the fine-tuning.
        pretrain_args, forecast_args: further ``vtrep fit`` arguments of the pretraining / forecasting fits
            (probe, fine-tuning and supervised; e.g. ``--data.init_args.batch_size 32``).
        progress: show a progress bar over the steps.
        patchtst_test_batch: the batch of the second test, PatchTST's loader (128, its ETT scripts' batch size).
        supervised_config: the supervised config (default ``configs/experiment/patchtst64_supervised.yaml``).
        supervised_epochs: its ``--trainer.max_epochs`` (PatchTST: 100, no early stopping).
        jobs: how many chains run at once (a chain: one seed's pretraining and the probes and fine-tuning
            from it, or one supervised horizon of a seed), each process with ``cores // jobs`` threads
            (:mod:`vtrep.benchmark.parallel`); every step is a process of its own, so the results equal those of
            one chain at a time at the same thread count (``VTREP_NUM_THREADS``).
    """
    datasets, horizons, seeds, modes = _defaults(datasets, horizons, seeds, modes)
    pretrain_args, forecast_args = fit_words(pretrain_args), fit_words(forecast_args)
    positive_int("patchtst_test_batch", patchtst_test_batch)
    positive_int("jobs", jobs)
    configs = _check_inputs(root, datasets, pretrain_config, forecast_config, supervised_config)
    plan = Plan(*configs[:3], {"pretrain": pretrain_epochs, "probe": probe_epochs, "finetune": finetune_epochs,
                               "supervised": supervised_epochs}, {"probe": probe_lr, "finetune": finetune_lr},
                pretrain_args, forecast_args, patchtst_test_batch)
    results = _run_steps(plan, Path(output), configs[3], datasets, seeds, horizons, modes, progress, jobs)
    settings = dict(pretrain_config=pretrain_config, forecast_config=forecast_config, pretrain_epochs=pretrain_epochs,
                    probe_epochs=probe_epochs, finetune_epochs=finetune_epochs, probe_lr=probe_lr,
                    finetune_lr=finetune_lr, pretrain_args=pretrain_args, forecast_args=forecast_args,
                    patchtst_test_batch=patchtst_test_batch, supervised_config=supervised_config,
                    supervised_epochs=supervised_epochs, jobs=jobs)
    command = (f"vtrep benchmark ett --root {root} --datasets {cli_list(datasets)} --horizons {cli_list(horizons)} "
               f"--seeds {cli_list(seeds)} --modes {cli_list(modes)}{changed_settings(settings)} --output {output}")
    text = summary_markdown(results, command)
    atomic_write(Path(output) / "summary.md", lambda p: p.write_text(text))
    print(text)
    return results
