"""``vtrep concepts``: which SAE latents are temporal concepts, static, position-coded — beside a random-encoder control.

Writes into ``output``: ``metrics.json`` (every latent's metrics, one list per field), ``summary.json`` and
``summary.md`` (one table; with ``control``, the random-encoder run's column beside it and its own
``control/metrics.json`` + ``control/summary.json``), ``summary.png`` (the runs' classes and metric
distributions) and ``latents.html`` (every live latent's metrics, sortable, filterable to the candidates
"dynamic, not position-coded, above control": :mod:`vtrep.reports.latent_metrics`). Every file is written
atomically; a folder that already holds a finished run (``summary.md``) is refused. Definitions:
:mod:`vtrep.eval.concept_metrics`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from vtrep.checks import positive_int
from vtrep.errors import UsageError
from vtrep.io.atomic_write import atomic_write


@dataclass
class Run:
    """An SAE folder and the feature folder (``vtrep extract``) it is measured on."""

    sae: str
    features: str


def _percent(value) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _fixed(value, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _rows(summary: dict) -> list[tuple[str, str]]:
    share, coherence = summary["share_of_live"], summary["coherence"]
    rows = [("live latents (of all)", f"{summary['live']} of {summary['latents']}"),
            ("dynamic (share of live)", _percent(share["dynamic"])),
            ("static", _percent(share["static"])),
            ("still (fire more without motion)", _percent(share["still"])),
            ("mixed", _percent(share["mixed"])),
            ("silent on the re-encoded items", _percent(share["silent"])),
            ("order-sensitive", _percent(share["order_sensitive"])),
            ("position-coded (η² ≥ 0.5)", _percent(share["position_coded"])),
            ("dynamic, not position-coded (count)", str(summary["dynamic_not_position_coded"])),
            ("temporal coherence, median [q25, q75]",
             f"{_fixed(coherence['median'])} [{_fixed(coherence['q25'])}, {_fixed(coherence['q75'])}]"),
            ("position η², median", _fixed(summary["eta2"]["median"]))]
    probe = summary.get("probing")
    if probe:
        for k in ("k1", "k2", "k5"):
            rows.append((f"k-sparse probe, SAE latents, k = {k[1:]}", _fixed(probe["sae"][k], 3)))
        for k in ("k1", "k2", "k5"):
            rows.append((f"k-sparse probe, raw features, k = {k[1:]}", _fixed(probe["raw"][k], 3)))
        rows.append(("probe, all raw features", _fixed(probe["raw"]["dense"], 3)))
    if "candidates" in summary:
        rows.insert(9, ("candidates: dynamic, not position-coded, above control (count)",
                        str(summary["candidates"]["count"])))
    return rows


def summary_table(summaries: dict[str, dict]) -> str:
    """One markdown table, a column per run (``{"trained": summary, "random-init control": summary}``)."""
    names = list(summaries)
    rows = {name: dict(_rows(s)) for name, s in summaries.items()}
    lines = ["| metric | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    for label, _ in _rows(summaries[names[0]]):
        lines.append(f"| {label} | " + " | ".join(rows[name].get(label, "–") for name in names) + " |")
    first = summaries[names[0]]
    notes = [f"{first['kind']} tokens: {first['tokens']} of {first['items']} items; static vs dynamic from "
             f"{first['perturbed_items']} re-encoded items; thresholds {first['thresholds']}."]
    probe = first.get("probing")
    if probe:
        notes.append(f"Probing: mean over classes of one-vs-rest balanced accuracy (chance 0.5), "
                     f"{probe['train_items']} train / {probe['test_items']} held-out items.")
    return "\n".join(lines) + "\n\n" + " ".join(notes) + "\n"


def _write_json(path: Path, payload: dict) -> None:
    text = json.dumps(payload, indent=2)
    atomic_write(path, lambda tmp: tmp.write_text(text))


def _measure(run: Run, folder: Path, options: dict) -> dict:
    from vtrep.eval.concept_metrics import latent_metrics
    from vtrep.sae.io import load_sae

    per_latent, summary = latent_metrics(load_sae(run.sae), run.features, **options)
    summary = {"sae": str(Path(run.sae).resolve()), "features": str(Path(run.features).resolve()), **summary}
    folder.mkdir(parents=True, exist_ok=True)
    _write_json(folder / "metrics.json", {"latents": summary["latents"], **per_latent})
    _write_json(folder / "summary.json", summary)
    return summary


def write_latent_pages(out: Path, table_md: str, runs: dict, rows: list, threshold: float | None) -> tuple[Path, Path]:
    """``summary.png`` and ``latents.html`` of the runs read back from ``out`` (``read_concept_runs``) and their
    judged rows (``run_rows``)."""
    from vtrep.reports.latent_metrics_figure import metrics_summary_figure
    from vtrep.reports.latent_table import metrics_page, metrics_table

    figure = metrics_summary_figure(runs, rows, threshold, out / "summary.png")
    page = metrics_page(f"SAE latents' temporal metrics: {runs['trained'].summary['sae']}", table_md,
                        metrics_table(rows, threshold), figure.name)
    return figure, atomic_write(out / "latents.html", lambda tmp: tmp.write_text(page, encoding="utf-8"))


def concepts(sae: str, features: str, output: str, control: Run | None = None, max_items: int | None = 256,
             clip_batch: int = 16, batch_size: int = 8192, test_fraction: float = 0.3, seed: int = 0,
             device: str = "cpu") -> dict:
    """Per-latent temporal concept metrics of an SAE over a feature folder, and of a random-encoder control.

    Args:
        sae: an SAE folder (``<log dir>/sae`` of ``vtrep fit``).
        features: the feature folder the metrics are measured on (``vtrep extract``; its ``source.json``
            leads back to the encoder and the items, which are re-encoded for the static vs dynamic scores).
        output: folder for ``metrics.json``, ``summary.json``, ``summary.md`` (and ``control/``).
        control: the same pipeline at random init: ``{sae: ..., features: ...}``, the features extracted with
            ``vtrep extract --random_init true`` and the SAE fitted on them with the same config.
        max_items: items re-encoded (as they are, motion removed, order removed), evenly spaced; None: all.
        clip_batch: items per encoder batch in that pass.
        batch_size: tokens per SAE batch.
        test_fraction: share of items held out (per class) for k-sparse probing.
        seed: seed of the frame shuffles and of the probing split.
        device: where the encoder and the SAE run.
    """
    if max_items is not None:
        positive_int("max_items", max_items)
    positive_int("clip_batch", clip_batch)
    positive_int("batch_size", batch_size)
    if not 0 < test_fraction < 1:
        raise UsageError(f"test_fraction must be in (0, 1), got {test_fraction}")
    options = dict(max_items=max_items, clip_batch=clip_batch, batch_size=batch_size, test_fraction=test_fraction,
                   seed=seed, device=device)
    out = Path(output)
    if (out / "summary.md").exists():
        raise FileExistsError(f"{out} already holds a finished run (summary.md); write into a new folder")
    summaries = {"trained": _measure(Run(sae, features), out, options)}
    if control is not None:
        summaries["random-init control"] = _measure(control, out / "control", options)
    from vtrep.reports.latent_metrics import read_concept_runs, run_rows

    runs = read_concept_runs(out)
    rows, threshold = run_rows(runs)  # candidates: dynamic, not position-coded, above the control
    summaries["trained"]["candidates"] = {"count": sum(r.candidate for r in rows), "above_control_at": threshold}
    _write_json(out / "summary.json", summaries["trained"])
    table = summary_table(summaries)
    atomic_write(out / "summary.md", lambda tmp: tmp.write_text(table))
    write_latent_pages(out, table, runs, rows, threshold)
    print(table, end="")
    print(f"wrote {out / 'metrics.json'}, summary.json, summary.md, summary.png and latents.html in {out}")
    return summaries


def concepts_cli(args: list[str] | None = None) -> dict:
    from vtrep.cli_messages import run_command

    return run_command(concepts, args)
