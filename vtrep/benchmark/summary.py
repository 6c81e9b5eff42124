"""A suite's ``summary.md`` (mean ± std over seeds beside published figures) and ``summary.png``."""

from __future__ import annotations

import csv
import statistics
from importlib import resources
from pathlib import Path

from vtrep.io.atomic_write import atomic_write


def reference_table(name: str) -> tuple[dict[str, dict[str, float]], str]:
    """``({dataset: {method: accuracy}}, source)`` of a shipped reference CSV (``#`` lines are its source)."""
    text = resources.files("vtrep.benchmark").joinpath("references", f"{name}.csv").read_text()
    source = " ".join(line.lstrip("# ").strip() for line in text.splitlines() if line.startswith("#"))
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    return {row.pop("dataset"): {k: float(v) for k, v in row.items() if v} for row in rows}, source


def per_dataset(results: list[dict], metric: str = "accuracy") -> dict[str, list[float]]:
    values: dict[str, list[float]] = {}
    for result in results:
        values.setdefault(result["dataset"], []).append(float(result[metric]))
    return values


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summary_markdown(results: list[dict], reference: str, command: str, metric: str = "accuracy") -> str:
    """The table: per dataset vtrep mean ± std (seeds) and each published method; then the means."""
    refs, source = reference_table(reference)
    methods = sorted({m for row in refs.values() for m in row})
    values = per_dataset(results, metric)
    lines = [f"`{command}`", "", f"| dataset | seeds | vtrep {metric} | " + " | ".join(methods) + " |",
             "| --- | --- | --- | " + " | ".join("---" for _ in methods) + " |"]
    for dataset, vals in values.items():
        mean, std = mean_std(vals)
        published = [f"{refs[dataset][m]:.3f}" if m in refs.get(dataset, {}) else "—" for m in methods]
        lines.append(f"| {dataset} | {len(vals)} | {mean:.3f} ± {std:.3f} | " + " | ".join(published) + " |")
    means = [mean_std(v)[0] for v in values.values()]
    if means:
        published = []
        for m in methods:
            known = [refs[d][m] for d in values if m in refs.get(d, {})]
            published.append(f"{statistics.fmean(known):.3f}" if len(known) == len(values) else "—")
        lines.append(f"| **mean** | | **{statistics.fmean(means):.3f}** | " + " | ".join(published) + " |")
    seconds = sum(float(r.get("fit_seconds", 0)) + float(r.get("probe_seconds", 0)) for r in results)
    lines += ["", f"{len(results)} runs, {seconds / 60:.1f} min of fit + probe on this machine. {source}"]
    return "\n".join(lines) + "\n"


def summary_plot(results: list[dict], reference: str, path: Path, baseline: str, metric: str = "accuracy") -> None:
    """vtrep's mean (± std) against the published ``baseline`` per dataset, on the diagonal's two sides."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    refs, _ = reference_table(reference)
    values = {d: mean_std(v) for d, v in per_dataset(results, metric).items() if baseline in refs.get(d, {})}
    figure, axes = plt.subplots(figsize=(5, 5))
    axes.plot([0, 1], [0, 1], color="grey", linewidth=0.8)
    for dataset, (mean, std) in values.items():
        axes.errorbar(refs[dataset][baseline], mean, yerr=std, fmt="o", markersize=4, capsize=2)
        axes.annotate(dataset, (refs[dataset][baseline], mean), fontsize=6, xytext=(3, -3), textcoords="offset points")
    axes.set_xlabel(f"published {baseline} {metric}")
    axes.set_ylabel(f"vtrep {metric} (mean ± std over seeds)")
    low = min([0.5] + [min(refs[d][baseline], m - s) for d, (m, s) in values.items()])
    axes.set_xlim(low, 1.01)
    axes.set_ylim(low, 1.01)
    figure.tight_layout()
    atomic_write(path, lambda p: figure.savefig(p, dpi=120))
    plt.close(figure)


def write_summary(results: list[dict], out: Path, reference: str, command: str, baseline: str) -> None:
    text = summary_markdown(results, reference, command)
    atomic_write(out / "summary.md", lambda p: p.write_text(text))
    summary_plot(results, reference, out / "summary.png", baseline)
