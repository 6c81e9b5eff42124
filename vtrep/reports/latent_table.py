"""The sortable, filterable HTML table of every live latent's temporal metrics, and the page that holds it.

Sorting and filtering run in the browser (a few lines of inline script, no library, nothing fetched):
click a column's header to sort by it (again: reverse); the checkbox keeps the rows of the candidates,
"dynamic, not position-coded, above control" (:mod:`vtrep.reports.latent_metrics`). The page works
without the script too: the table is then in latent order with every row shown.
"""

from __future__ import annotations

from html import escape

from vtrep.reports.latent_metrics import CONTROL_QUANTILE, LatentRow

COLUMNS = ["latent", "class", "dynamic score", "order score", "coherence", "position η²", "token rate",
           "position-coded", "above control", "candidate"]

SCRIPT = """
function sortBy(th) {
  const table = th.closest('table'), body = table.tBodies[0], col = th.cellIndex;
  const down = th.dataset.order !== 'desc'; th.dataset.order = down ? 'desc' : 'asc';
  const key = r => { const v = r.cells[col].dataset.v; return v === '' ? null : (isNaN(v) ? v : +v); };
  const rows = Array.from(body.rows).sort((a, b) => {
    const x = key(a), y = key(b);
    if (x === null) return 1; if (y === null) return -1;
    return (x < y ? -1 : x > y ? 1 : 0) * (down ? -1 : 1);
  });
  rows.forEach(r => body.appendChild(r));
}
function onlyCandidates(box) {
  for (const r of document.querySelectorAll('table.latents tbody tr'))
    r.style.display = box.checked && r.dataset.candidate !== '1' ? 'none' : '';
}
"""

STYLE = """
table.latents th { cursor: pointer; } table.latents tr.candidate td { background: #eaf6ea; }
"""


def _cell(value, text: str | None = None) -> str:
    """A cell sorted by ``value`` (numbers as numbers, ``None`` last) and showing ``text``."""
    if value is None:
        return "<td data-v=''>–</td>"
    sort = f"{value:.6g}" if isinstance(value, float) else str(int(value) if isinstance(value, bool) else value)
    return f"<td data-v='{escape(sort)}'>{escape(text if text is not None else str(value))}</td>"


def _fixed(value: float | None, digits: int = 3) -> str | None:
    return None if value is None else f"{value:.{digits}f}"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def row_html(row: LatentRow, linked: set[int]) -> str:
    """One table row; the latent number links to its section when the page has one."""
    number = f"<a href='#latent-{row.latent}'>{row.latent}</a>" if row.latent in linked else str(row.latent)
    cells = [f"<td data-v='{row.latent}'>{number}</td>", _cell(row.kind),
             _cell(row.dynamic_score, _fixed(row.dynamic_score)), _cell(row.order_score, _fixed(row.order_score)),
             _cell(row.coherence, _fixed(row.coherence)), _cell(row.eta2, _fixed(row.eta2)),
             _cell(row.token_rate, f"{row.token_rate:.4f}"), _cell(row.position_coded, _yes(row.position_coded)),
             _cell(row.above_control, _yes(row.above_control)), _cell(row.candidate, _yes(row.candidate))]
    marks = " class='candidate'" if row.candidate else ""
    return f"<tr data-candidate='{int(row.candidate)}'{marks}>{''.join(cells)}</tr>"


def control_note(threshold: float | None) -> str:
    """How "above control" was decided for this table."""
    if threshold is None:
        return ("No random-init control run beside these metrics: no latent is above control, so no latent is a "
                "candidate. Run `vtrep concepts` with --control.sae and --control.features.")
    return (f"Above control: dynamic score above {threshold:.3f}, the {CONTROL_QUANTILE:.0%} quantile of the "
            f"random-init control SAE's live latents.")


def metrics_table(rows: list[LatentRow], threshold: float | None, linked: set[int] | None = None) -> str:
    """The filter checkbox, the note on the control and the sortable table of ``rows``."""
    head = "".join(f"<th onclick='sortBy(this)' title='click to sort'>{escape(c)}</th>" for c in COLUMNS)
    body = "".join(row_html(r, linked or set()) for r in rows)
    candidates = sum(r.candidate for r in rows)
    return (f"<p><label><input type='checkbox' onchange='onlyCandidates(this)'> only dynamic, not position-coded, "
            f"above control ({candidates} of {len(rows)} live latents)</label></p>"
            f"<p class='note'>{escape(control_note(threshold))} Click a column's header to sort.</p>"
            f"<table class='latents'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def metrics_page(title: str, summary_md: str, table: str, figure: str | None) -> str:
    """A standalone page: the run summary (markdown shown as text), the summary plot and the table."""
    image = f"<p><img src='{escape(figure)}' alt='summary of the latents temporal metrics'></p>" if figure else ""
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1400px; }} "
            f"table {{ border-collapse: collapse; font-size: 0.9em; }} th, td {{ border: 1px solid #ccc; "
            f"padding: 0.2em 0.5em; text-align: right; }} th {{ background: #f0f0f0; }} .note {{ color: #555; }}"
            f"{STYLE}</style><script>{SCRIPT}</script></head><body><h1>{escape(title)}</h1>"
            f"<pre>{escape(summary_md)}</pre>{image}{table}</body></html>")
