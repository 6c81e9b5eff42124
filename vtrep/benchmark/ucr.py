"""``vtrep benchmark ucr``: TS2Vec's UCR protocol through ``vtrep fit`` + ``vtrep probe``, over sets and seeds.

Per dataset and seed: ``vtrep fit --config <fit_config>`` on the training split (TS2Vec's budget: 200
iterations when the training split holds at most 100 000 values, else 600; batch ``min(8, n)``, the last
short batch dropped, as TS2Vec's ``fit``), then the probe of the exported encoder — for TS2Vec the weight
average it evaluates — with TS2Vec's SVM protocol on the test split. Any folder in the UCR archive layout
works (``<root>/<name>/<name>_TRAIN.tsv``); without ``datasets`` every set in it is run.

Any such set runs as TS2Vec runs it: NaN-padded variable-length series stay NaN (the encoder zeroes
those steps; TS2Vec's fit centres the padding of its training series, and so does ``configs/data/ucr.yaml``);
labels of any value become ``0..K−1``; training series of length ≥ 6 000 are cut into ``T // 3000``
pieces and batches longer than 3 000 cropped (``max_train_length``); the probe encodes in batches of
bounded size; above 10 000 training series the SVM sees TS2Vec's stratified 10 000 (``random_state=0``).
Deviations: the two splits are NaN-padded to one width (the wider file's) where TS2Vec encodes each at
its own file's width — padded steps take part in the max-pool in both, so a split narrower than the
other gets more of them; above 5 000 training series C = ∞ is left out of the SVM grid
(:mod:`vtrep.eval.series_classification`).
"""

from __future__ import annotations

from pathlib import Path

from vtrep.benchmark.runner import Run, cli_list, run_suite, suite_list, suite_seeds
from vtrep.benchmark.summary import write_summary
from vtrep.checks import positive_int
from vtrep.errors import UsageError

DEFAULT_FIT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "experiment" / "ts2vec_ucr.yaml"


def ts2vec_budget(root: str, name: str, batch_size: int = 8) -> list[str]:
    """``vtrep fit`` arguments for TS2Vec's training budget on this dataset (iterations and batch size).

    TS2Vec's ``fit`` without ``n_iters`` / ``n_epochs``: 200 iterations when its training array (series ×
    length × channels, the training file's own width with its NaN padding) holds at most 100 000 values,
    else 600, counted before long series are cut into pieces; epochs are however many those iterations
    take. The batch is ``min(batch_size, n)``; the loader caps it again at the number of training pieces.
    """
    from datamodules.series.ucr import training_shape

    n, channels, width = training_shape(root, name)
    iterations = 200 if n * channels * width <= 100_000 else 600
    return ["--trainer.max_steps", str(iterations), "--trainer.max_epochs", "-1",
            "--data.init_args.batch_size", str(min(batch_size, n))]


def patch_geometry(root: str, name: str, patches: int) -> list[str]:
    """``vtrep fit`` arguments that size a patch encoder (PatchTST / PITS) to this set: ``context_length`` the
    training file's width, non-overlapping patches of ``max(4, width // patches)`` steps (about ``patches`` per
    series). A patch encoder's position table is built for one length, so each set needs its own."""
    from datamodules.series.ucr import training_shape

    positive_int("patches_per_series", patches)
    _, _, width = training_shape(root, name)
    patch = max(4, width // patches)
    if patch > width:
        raise UsageError(f"{name}'s series have {width} steps, fewer than one patch of {patch}")
    prefix = "--model.init_args.encoder.init_args."
    return [prefix + "context_length", str(width), prefix + "patch_length", str(patch), prefix + "stride", str(patch)]


def list_datasets(root: str, datasets: list[str] | None) -> list[str]:
    from datamodules.series.ucr import available_datasets

    found = available_datasets(root)
    if datasets is None:
        if not found:
            raise FileNotFoundError(f"no dataset in the UCR layout under {root} (<name>/<name>_TRAIN.tsv)")
        return found
    datasets = suite_list("datasets", datasets, [])
    missing = [d for d in datasets if d not in found]
    if missing:
        raise FileNotFoundError(f"datasets {missing} are not under {root}; available: {', '.join(found)}")
    return list(datasets)


def probe_run(run: Run, fit_folder: Path) -> dict:
    """``vtrep probe`` on the fit's exported encoder and its own data settings (its ``config.yaml``)."""
    from vtrep.eval.encoders import load_encoder, load_task
    from vtrep.eval.probe_cli import probe_module

    _, data = load_task(str(fit_folder / "config.yaml"))
    encoder, revin = load_encoder(str(fit_folder / "encoder"))
    result = probe_module(encoder, revin, data, run.probe["protocol"], run.seed, {})
    return {k: result[k] for k in ("protocol", "accuracy", "num_train", "num_test") if k in result}


def suite_command(root: str, output: str, datasets: list[str] | None, seeds: list[int], fit_config: str | None,
                  protocol: str, patches_per_series: int | None) -> str:
    """The command as typed, every setting that differs from the defaults named (it stands beside the table)."""
    chosen = f" --datasets {cli_list(datasets)}" if datasets else ""
    chosen += f" --fit_config {fit_config}" if fit_config else ""
    chosen += f" --protocol {protocol}" if protocol != "svm" else ""
    chosen += f" --patches_per_series {patches_per_series}" if patches_per_series else ""
    return f"vtrep benchmark ucr --root {root}{chosen} --seeds {cli_list(seeds)} --output {output}"


def benchmark_ucr(root: str, output: str, datasets: list[str] | None = None, seeds: list[int] | None = None,
                  fit_config: str | None = None, protocol: str = "svm", patches_per_series: int | None = None,
                  progress: bool = True) -> list[dict]:
    """Fit and probe every (dataset, seed); write ``results.csv``, ``summary.md`` and ``summary.png`` in ``output``.

    Args:
        root: a folder in the UCR archive layout.
        output: the suite folder; a rerun resumes it (finished runs are kept, killed ones redone).
        datasets: names under ``root`` (default: all of them).
        seeds: the seeds of each dataset's runs (default 0, 1, 2; TS2Vec's table is one run).
        fit_config: the ``vtrep fit`` config (default ``configs/experiment/ts2vec_ucr.yaml``).
        protocol: the probe protocol (``svm``: TS2Vec's).
        patches_per_series: for a patch encoder's fit config (``configs/experiment/series_mae_ucr.yaml``): size
            its ``context_length`` and patches to each set (:func:`patch_geometry`); ``None`` leaves the config's.
        progress: show a progress bar over the suite.
    """
    seeds = suite_seeds(seeds)
    config = Path(fit_config) if fit_config else DEFAULT_FIT_CONFIG
    if not config.is_file():
        raise FileNotFoundError(f"fit_config={str(config)!r} does not exist; pass the vtrep fit config to benchmark")
    root_path = Path(root).resolve()
    runs = [Run(name, int(seed), str(config.resolve()),
                ("--data.init_args.root", str(root_path), "--data.init_args.name", name,
                 *ts2vec_budget(str(root_path), name),
                 *(patch_geometry(str(root_path), name, patches_per_series) if patches_per_series else ())),
                {"protocol": protocol})
            for name in list_datasets(str(root_path), datasets) for seed in seeds]
    out = Path(output)
    results = run_suite(runs, out, probe_run, progress)
    command = suite_command(root, output, datasets, seeds, fit_config, protocol, patches_per_series)
    write_summary(results, out, "ucr", command, baseline="ts2vec")
    print((out / "summary.md").read_text())
    return results
