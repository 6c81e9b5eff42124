"""``vtrep benchmark video``: VideoMAE pretraining on a folder-per-class dataset, then k-fold probes.

Per seed: ``vtrep fit --config <fit_config> --data.init_args.root <root>`` (the fit uses the data
config's train split), then ``vtrep probe --folds <folds>`` of the exported encoder — and of the same
architecture at random initialisation — with each protocol (default MAE's linear probe and V-JEPA's
attentive probe) over all the folder's clips (train and val pooled, stratified folds). The pretraining
saw the training clips without labels; the probes' test folds include them, as every fold must be
tested once — a transductive reading that a held-out test set would avoid, stated with the table.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from vtrep.benchmark.runner import Run, cli_list, run_suite, suite_list, suite_seeds
from vtrep.errors import UsageError
from vtrep.eval.probe_cli import check_protocol_options
from vtrep.eval.video_probe import check_folds
from vtrep.io.atomic_write import atomic_write

DEFAULT_FIT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "experiment" / "fight_surv_pretrain.yaml"


def probe_run(run: Run, fit_folder: Path) -> dict:
    """Every protocol's k-fold accuracy for the pretrained encoder and for its random-init copy."""
    from vtrep.eval.encoders import load_encoder, load_task, random_copy
    from vtrep.eval.probe_cli import probe_module

    _, data = load_task(str(fit_folder / "config.yaml"))
    encoder, revin = load_encoder(str(fit_folder / "encoder"))
    encoders = (("pretrained", encoder), ("random", random_copy(encoder, run.seed)))
    row = {}
    for protocol in run.probe["protocols"]:
        options = run.probe.get("protocol_options", {}).get(protocol, {})
        for name, module in encoders:
            result = probe_module(module, revin, data, protocol, run.seed, options, run.probe["folds"])
            row[f"{protocol}_{name}"] = result["accuracy"]
            row[f"{protocol}_{name}_std"] = result["accuracy_std"]
    return row


def summary_markdown(results: list[dict], protocols: list[str], folds: int, command: str) -> str:
    lines = [f"`{command}`", "", "| protocol | pretrained | random init | difference | seeds |", "| --- | --- | --- | --- | --- |"]
    for protocol in protocols:
        pre = [r[f"{protocol}_pretrained"] for r in results]
        rnd = [r[f"{protocol}_random"] for r in results]
        diff = [a - b for a, b in zip(pre, rnd)]

        def cell(values):
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            return f"{100 * statistics.fmean(values):.1f} ± {100 * spread:.1f}"

        lines.append(f"| {protocol} | {cell(pre)} | {cell(rnd)} | {cell(diff)} | {len(results)} |")
    seconds = sum(float(r.get("fit_seconds", 0)) + float(r.get("probe_seconds", 0)) for r in results)
    lines += ["", f"Accuracy in % ({folds}-fold over all clips of the folder; mean ± std over seeds of the fold "
              f"means); {seconds / 60:.1f} min of fit + probes on this machine."]
    return "\n".join(lines) + "\n"


def benchmark_video(root: str, output: str, fit_config: str | None = None, seeds: list[int] | None = None,
                    folds: int = 5, protocols: list[str] | None = None, protocol_options: dict | None = None,
                    progress: bool = True) -> list[dict]:
    """Pretrain per seed, k-fold probe each protocol (pretrained vs random init); write the suite's files.

    Args:
        root: a folder-per-class video dataset (``<root>/<class>/<clip>``).
        output: the suite folder; a rerun resumes it.
        fit_config: the ``vtrep fit`` config (default ``configs/experiment/fight_surv_pretrain.yaml``).
        seeds: pretraining (and probe) seeds (default 0, 1, 2).
        folds: k of the k-fold probes.
        protocols: probe protocols (default ``linear`` and ``attentive``).
        protocol_options: per protocol, its own settings as ``vtrep probe --protocol_options`` takes them, e.g.
            ``{attentive: {self_attention_blocks: 1, lrs: [1e-3], weight_decays: [0.01]}}`` for a CPU-sized run.
        progress: show a progress bar over the suite.
    """
    seeds, protocols = suite_seeds(seeds), suite_list("protocols", protocols, ["linear", "attentive"])
    check_folds(folds)  # before any fit
    config = Path(fit_config) if fit_config else DEFAULT_FIT_CONFIG
    if not config.is_file():
        raise FileNotFoundError(f"fit_config={str(config)!r} does not exist; pass the vtrep fit config to benchmark")
    folder = Path(root).resolve()
    if not folder.is_dir():
        raise FileNotFoundError(f"root={root!r} is not a folder of class folders")
    options = dict(protocol_options or {})
    unknown = sorted(set(options) - set(protocols))
    if unknown:
        raise UsageError(f"protocol_options names {unknown}, which are not among protocols={list(protocols)}")
    for protocol, settings in options.items():
        check_protocol_options(protocol, dict(settings))
    probe = {"protocols": list(protocols), "folds": folds}
    if options:  # only when given, so suites written before this option resume unchanged
        probe["protocol_options"] = {k: dict(v) for k, v in options.items()}
    runs = [Run(folder.name, int(seed), str(config.resolve()), ("--data.init_args.root", str(folder)), probe)
            for seed in seeds]
    out = Path(output)
    columns = ["dataset", "seed", *[f"{p}_{e}" for p in protocols for e in ("pretrained", "random")]]
    results = run_suite(runs, out, probe_run, progress, columns=columns)
    command = (f"vtrep benchmark video --root {root} --seeds {cli_list(seeds)} --folds {folds} "
               f"--protocols {cli_list(protocols)}")
    if options:
        command += f" --protocol_options '{json.dumps(options)}'"
    command += f" --output {output}"
    text = summary_markdown(results, list(protocols), folds, command)
    atomic_write(out / "summary.md", lambda p: p.write_text(text))
    print(text)
    return results
