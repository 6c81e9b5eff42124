"""The per-latent temporal metrics in the report: control threshold, candidates, the sortable table, the plot."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from vtrep.reports.latent_metrics import control_threshold, latent_rows, read_concept_runs, run_rows
from vtrep.reports.latent_table import metrics_table

THRESHOLDS = {"dynamic": 0.5, "static": 0.2, "position_coded": 0.5}


def metrics(dynamic, eta2, rate=None, kind=None):
    """A ``metrics.json`` of hand-set values (classes from the dynamic score as ``vtrep concepts`` sets them)."""
    n = len(dynamic)
    rate = rate or [0.1] * n

    def classed(d, r):
        if not r:
            return "silent"
        return "dynamic" if d >= 0.5 else "still" if d <= -0.5 else "static" if abs(d) < 0.2 else "mixed"

    return {"latents": n, "token_rate": rate, "dynamic_score": dynamic, "order_score": [0.0] * n,
            "coherence": [0.3] * n, "eta2": eta2, "class": kind or [classed(d, r) for d, r in zip(dynamic, rate)],
            "position_coded": [e is not None and e >= 0.5 for e in eta2]}


def summary(m):
    live = [k for k, r in enumerate(m["token_rate"]) if r > 0]
    share = {c: sum(m["class"][k] == c for k in live) / len(live)
             for c in ("dynamic", "static", "still", "mixed", "silent")}
    share |= {"position_coded": sum(m["position_coded"][k] for k in live) / len(live), "order_sensitive": 0.0}
    return {"sae": "/x/sae", "latents": m["latents"], "live": len(live), "share_of_live": share,
            "thresholds": THRESHOLDS}


# latents: 0 dynamic & free of position, 1 dynamic but position-coded, 2 dynamic but within the control's
# range, 3 static, 4 dead (never fires), 5 dynamic with undefined η² (no variance)
TRAINED = metrics([0.9, 0.95, 0.55, 0.05, 0.0, 0.9], [0.1, 0.8, 0.1, 0.0, None, None],
                  rate=[0.1, 0.1, 0.1, 0.1, 0.0, 0.1])
CONTROL = metrics(list(np.linspace(-0.3, 0.6, 19)) + [0.9], [0.1] * 20)  # 95 % quantile: 0.6 + 0.05 · 0.3


def test_control_threshold_is_the_95_percent_quantile_of_the_controls_live_latents():
    assert control_threshold(CONTROL) == pytest.approx(0.615)
    assert control_threshold(None) is None
    dead = metrics([0.99, 0.1], [0.1, 0.1], rate=[0.0, 0.1])
    assert control_threshold(dead) == pytest.approx(0.1)  # a latent that never fired does not count


def test_a_candidate_is_dynamic_not_position_coded_and_above_the_control():
    rows = latent_rows(TRAINED, control_threshold(CONTROL), 0.5)
    assert [r.latent for r in rows] == [0, 1, 2, 3, 5]  # live latents only
    verdicts = {r.latent: (r.above_control, r.candidate) for r in rows}
    assert verdicts == {0: (True, True), 1: (True, False), 2: (False, False), 3: (False, False), 5: (True, False)}
    assert not any(r.candidate or r.above_control for r in latent_rows(TRAINED, None, 0.5))


def test_the_table_holds_one_sortable_row_per_live_latent_and_marks_the_candidates():
    rows = latent_rows(TRAINED, 0.6, 0.5)
    html = metrics_table(rows, 0.6, linked={3})
    body = re.findall(r"<tr data-candidate='(\d)'", html)
    assert body == ["1", "0", "0", "0", "0"]
    assert "1 of 5 live latents" in html and "0.600" in html
    assert "<a href='#latent-3'>3</a>" in html and "<a href='#latent-0'>" not in html
    assert html.count("<td data-v=''>–</td>") == 1  # latent 5's undefined η² sorts last, shown as a dash
    assert "data-v='0.95'" in html  # sorted by the number, not the shown text
    assert "No random-init control" in metrics_table(latent_rows(TRAINED, None, 0.5), None)


def write_run(folder, m):
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(m))
    (folder / "summary.json").write_text(json.dumps(summary(m)))


def test_the_pages_of_a_concepts_folder_and_its_errors(tmp_path):
    from PIL import Image

    from vtrep.eval.concepts_cli import write_latent_pages

    write_run(tmp_path / "run", TRAINED)
    write_run(tmp_path / "run" / "control", CONTROL)
    runs = read_concept_runs(tmp_path / "run")
    assert list(runs) == ["trained", "random-init control"]
    assert [r.latent for r in run_rows(runs)[0] if r.candidate] == [0]
    figure, page = write_latent_pages(tmp_path / "run", "| metric | trained |", runs, *run_rows(runs))
    image = np.asarray(Image.open(figure).convert("RGB"))
    assert image.shape[1] > 1000 and image.std() > 10
    html = page.read_text()
    assert "<img src='summary.png'" in html and "| metric | trained |" in html and "function sortBy" in html
    with pytest.raises(FileNotFoundError, match="vtrep concepts"):
        read_concept_runs(tmp_path / "nowhere")
    broken = dict(TRAINED, eta2=[0.1])
    write_run(tmp_path / "broken", broken)
    with pytest.raises(ValueError, match="equal length"):
        read_concept_runs(tmp_path / "broken")
