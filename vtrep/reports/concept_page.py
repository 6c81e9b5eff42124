"""The concept report's HTML page: a header, a table of the reported latents, a section per latent.

The page is self-contained apart from the PNGs beside it, which it links by relative names, so the
report folder can be moved or copied as a whole and opened in any browser.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from vtrep.reports.concepts import LatentStats, Span
from vtrep.reports.latent_metrics import LatentRow
from vtrep.reports.latent_table import SCRIPT, metrics_table
from vtrep.reports.latent_table import STYLE as TABLE_STYLE

REPORT = "report.html"

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1400px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f0f0f0; } td.text, th.text { text-align: left; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.3em 0; }
section { border-top: 2px solid #888; margin-top: 2em; }
dl.defs dt { font-weight: bold; } .note { color: #555; font-size: 0.9em; }
"""

DEFINITIONS = [
    ("token rate", "fraction of all tokens where the latent's code is > 0 (on)"),
    ("items on", "items (clips / series) with at least one token on, and their fraction"),
    ("mean / max when on", "mean and largest code over the tokens where it is on"),
    ("run", "a stretch of consecutive temporal positions that are on within one item (a position is on "
            "when any of its tokens is on); mean and longest, in positions and in {unit}"),
    ("spread", "mean fraction of a position's tokens that are on when the position is on "
               "(video: share of the h×w tokens of a frame; series: share of the channels)"),
    ("peak position", "the temporal position where the latent is most often on"),
]


def label_text(label: int, names: list[str] | None) -> str:
    """``label`` with its class name when known (−1: the data has no labels)."""
    if label < 0:
        return "no label"
    return f"{label} ({names[label]})" if names and label < len(names) else str(label)


def _table(head: list[str] | None, rows: list[list[str]], text_columns: int = 0) -> str:
    """An HTML table of already-escaped cells; the first ``text_columns`` columns are left-aligned."""
    cells = "".join(f"<th class='text'>{h}</th>" if i < text_columns else f"<th>{h}</th>"
                    for i, h in enumerate(head or []))
    body = "".join("<tr>" + "".join(f"<td class='text'>{c}</td>" if i < text_columns else f"<td>{c}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table>{f'<tr>{cells}</tr>' if cells else ''}{body}</table>"


def _stats_row(s: LatentStats, unit: str) -> list[str]:
    peak = max(range(len(s.where)), key=lambda p: s.where[p]) if any(s.where) else "–"
    return [f"<a href='#latent-{s.latent}'>{s.latent}</a>", f"{s.token_rate:.4f}",
            f"{s.items_on} ({s.item_fraction:.1%})", f"{s.mean_on:.3f}", f"{s.max_on:.3f}",
            f"{s.mean_run_tokens:.2f} / {s.mean_run_steps:.1f}", f"{s.max_run_tokens} / {s.max_run_steps:.0f}",
            f"{s.spread:.2f}", str(peak)]


METRIC_HEAD = ["class", "dynamic score", "position η²", "coherence", "candidate"]


def _metric_cells(row: LatentRow | None) -> list[str]:
    """The ``vtrep concepts`` columns of a reported latent (dashes: silent on the measured items)."""
    if row is None:
        return ["–"] * len(METRIC_HEAD)
    number = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
    return [escape(row.kind), number(row.dynamic_score), number(row.eta2), number(row.coherence),
            "yes" if row.candidate else "no"]


def latents_table(stats: list[LatentStats], span: Span, metrics: dict[int, LatentRow] | None = None) -> str:
    """The reported latents' statistics; with ``metrics`` (rows by latent) their temporal metrics too."""
    head = ["latent", "token rate", "items on", "mean when on", "max", f"mean run (positions / {span.unit})",
            f"longest run (positions / {span.unit})", "spread", "peak position"]
    if metrics is None:
        return _table(head, [_stats_row(s, span.unit) for s in stats])
    return _table(head + METRIC_HEAD, [_stats_row(s, span.unit) + _metric_cells(metrics.get(s.latent)) for s in stats])


def metrics_section(rows: list[LatentRow], threshold: float | None, figure: str, reported: set[int]) -> str:
    """Every live latent's temporal metrics (``vtrep concepts``): the summary plot and the sortable table."""
    return (f"<section id='temporal-metrics'><h2>All live latents: temporal metrics</h2>"
            f"<p><img src='{escape(figure)}' alt='temporal metrics of all latents'></p>"
            f"{metrics_table(rows, threshold, reported)}</section>")


def latent_section(s: LatentStats, figures: list[str], item_noun: str, names: list[str] | None, span: Span,
                   item_names: dict[int, str] | None = None) -> str:
    """One latent: its numbers, its figures (relative links) and its top items (with their files)."""
    where = " ".join(f"{w:.2f}" for w in s.where)
    plural = item_noun if item_noun.endswith("s") else f"{item_noun}s"
    item_names = item_names or {}
    items = _table(["rank", item_noun, "file", "label", "max activation"],
                   [[str(r + 1), str(i), escape(item_names.get(i, "")), escape(label_text(lab, names)), f"{v:.3f}"]
                    for r, (i, lab, v) in enumerate(s.top_items)], text_columns=0)
    images = "".join(f"<p><img src='{escape(name)}' alt='latent {s.latent}: {escape(name)}'></p>" for name in figures)
    return (f"<section id='latent-{s.latent}'><h2>Latent {s.latent}</h2>"
            f"<p>on in {s.items_on} {plural} ({s.item_fraction:.1%}), {s.token_rate:.4f} of tokens; "
            f"mean activation when on {s.mean_on:.3f}, max {s.max_on:.3f}; runs {s.mean_run_steps:.1f} {span.unit} "
            f"on average, longest {s.max_run_steps:.0f}; spread {s.spread:.2f}.</p>"
            f"<p class='note'>where it fires (fraction per position 0 … {len(s.where) - 1}): {where}</p>"
            f"{images}<h3>Top {plural}</h3>{items}</section>")


def report_page(header: dict[str, str], selection: str, stats: list[LatentStats], figures: dict[int, list[str]],
                summary: str | None, span: Span, item_noun: str, names: list[str] | None,
                item_names: dict[int, str] | None = None, metrics: dict[int, LatentRow] | None = None,
                metrics_html: str = "") -> str:
    """The whole page as a string; ``figures`` maps each latent to its PNG names (relative to the page);
    ``metrics`` / ``metrics_html``: the reported latents' ``vtrep concepts`` rows and :func:`metrics_section`."""
    head = _table(None, [[f"<b>{escape(k)}</b>", escape(str(v))] for k, v in header.items()], text_columns=2)
    defs = "".join(f"<dt>{escape(t)}</dt><dd>{escape(d.format(unit=span.unit))}</dd>" for t, d in DEFINITIONS)
    summary_html = f"<p><img src='{escape(summary)}' alt='summary of the reported latents'></p>" if summary else ""
    sections = "".join(latent_section(s, figures.get(s.latent, []), item_noun, names, span, item_names)
                       for s in stats)
    latents = ", ".join(str(s.latent) for s in stats)
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>SAE concept report</title>"
            f"<style>{STYLE}{TABLE_STYLE}</style><script>{SCRIPT}</script></head><body><h1>SAE concept report</h1>{head}"
            f"<p><b>Latents:</b> {latents}. <span class='note'>Chosen as: {escape(selection)}.</span></p>"
            f"{summary_html}<h2>Reported latents</h2>{latents_table(stats, span, metrics)}"
            f"<dl class='defs'>{defs}</dl>{metrics_html}{sections}</body></html>")


def write_report_page(folder: str | Path, page: str) -> Path:
    """Write ``folder/report.html``; an existing report is never overwritten."""
    path = Path(folder) / REPORT
    with open(path, "x", encoding="utf-8") as handle:  # "x": fail rather than replace a file that appeared
        handle.write(page)
    return path
