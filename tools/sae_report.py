"""Temporal concept report of an SAE's latents over extracted features: PNGs and one ``report.html``.

    python tools/sae_report.py --sae runs/sae --features runs/features --output runs/concepts \
        [--latents [3,17]] [--top_latents 8] [--top_items 6] [--max_frames 8] [--batch_size 8192]

``sae`` is a folder written by :func:`vtrep.sae.io.save_sae`; ``features`` a folder written by
``vtrep extract`` (its ``source.json`` leads back to the clips or series). Without ``latents`` the
``top_latents`` reported are chosen by :func:`vtrep.reports.concepts.select_latents` (on in ≥ 1 % of
items, on ≤ 10 % of tokens, highest mean activation when on). Per latent the report has its
statistics (definitions in :mod:`vtrep.reports.concepts`), its top items and figures — video: a
frame grid with token heatmaps and activation per frame; series: the curves with the activation
shaded and activation per step — plus ``summary.png`` and ``concepts.json`` (the numbers).

With ``--metrics`` (a ``vtrep concepts`` output folder measured on the same SAE) the page also holds every
live latent's temporal metrics — class, dynamic and order scores, coherence, position η², above the
random-encoder control or not — as a sortable table with the filter "dynamic, not position-coded, above
control", the run's summary plot (``metrics_summary.png``), and those columns for the reported latents.

Two passes over the features: one over everything (per-latent running statistics and top items,
memory ``O(K · positions)``), one over the shards holding the reported items only. An output folder
that already holds a ``report.html`` (or any file the report would write) is refused.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

OWN_FILES = ["summary.png", "concepts.json", "metrics_summary.png"]  # beside the per-latent PNGs


def _output_folder(output: str, files: list[str] | None = None) -> Path:
    """The report folder, refused when it is a file, holds a report, or holds any of ``files``."""
    from vtrep.reports.concept_page import REPORT

    out = Path(output)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"output={output!r} is a file, not a folder")
    if (out / REPORT).exists():
        raise FileExistsError(f"{out / REPORT} already exists; write the report into a new folder")
    taken = [name for name in files or [] if (out / name).exists()]
    if taken:
        raise FileExistsError(f"{out} already holds {taken}; write the report into a new folder")
    return out


def _class_names(data) -> list[str] | None:
    for attribute in ("class_names", "classes"):
        try:
            names = getattr(data, attribute, None)
        except Exception:  # a property that needs data the report does not have
            names = None
        if names:
            return list(names)
    return None


def _span(acc, source: dict, items):
    from vtrep.io.pretrained import read_config
    from vtrep.reports.concepts import item_span

    first = items[0][0]
    length = first.shape[1] if acc.layout.kind == "video" else first.shape[-1]
    config = None
    if "patch_length" in source:  # `vtrep extract` records the token geometry (None: one token per step)
        config = {} if source["patch_length"] is None else {"patch_length": source["patch_length"],
                                                             "stride": source["stride"]}
    elif Path(source["encoder"]).is_dir():
        try:
            config = read_config(source["encoder"])["config"]
        except (FileNotFoundError, ValueError):  # moved or foreign encoder: fall back to the item's shape
            config = None
    return item_span(acc.layout, acc.num_positions, length, config)


def _file_names(stats, kind: str) -> dict[int, list[str]]:
    view = "frames" if kind == "video" else "series"
    return {s.latent: [f"latent_{s.latent:05d}_{view}.png", f"latent_{s.latent:05d}_time.png"]
            for s in stats if s.top_items}


def _views(s, column: int, acts, items, source: dict, names):
    """The :class:`ItemView` of each top item of latent ``s`` (items decoded one latent at a time)."""
    from vtrep.reports.concept_figures import ItemView, denormalise
    from vtrep.reports.concept_page import label_text

    video = source["kind"] == "video"
    args = source["data"].get("init_args", {})
    views = []
    for item, label, value in s.top_items:
        data = items[item][0]
        data = denormalise(data.float(), args.get("mean"), args.get("std")) if video else data.float()
        noun = "clip" if video else "series"
        caption = f"{noun} {item}: {items.name(item)}\n{label_text(label, names)}\nmax {value:.2f}"
        views.append(ItemView(item, caption, data, acts[item].grid(column)))
    return views


def _draw(out: Path, stats, files, acc, acts, items, source, span, max_frames, max_token_rate, names) -> str:
    from vtrep.reports import concept_figures as figures

    for column, s in enumerate(stats):
        if s.latent not in files:
            continue
        views = _views(s, column, acts, items, source, names)
        vmax = s.top_items[0][2]
        main, time = (out / name for name in files[s.latent])
        if source["kind"] == "video":
            figures.video_frames_figure(s.latent, views, span, vmax, max_frames, main)
        else:
            figures.series_figure(s.latent, views, span, vmax, main)
        figures.activation_time_figure(s.latent, views, span, time)
    token_rate = acc.fires / max(acc.tokens, 1)
    mean_on = (acc.act_sum / acc.fires.clamp_min(1)).float()
    figures.summary_figure(stats, token_rate, mean_on, span, max_token_rate, out / "summary.png")
    return "summary.png"


def _skipped_note(source: dict, features) -> str:
    """The videos ``vtrep extract`` skipped as unreadable, which have no features to report on."""
    skipped = source.get("skipped") or []
    if not skipped:
        return ""
    return f" ({len(skipped)} unreadable videos skipped at extraction: {Path(features) / 'skipped_videos.txt'})"


def _header(sae_dir, model, features, source, acc, span) -> dict[str, str]:
    extra = f", k={model.k}" if hasattr(model, "k") else ""
    return {"SAE": f"{sae_dir} ({type(model).__name__}, K={model.num_latents}, d_in={model.d_in}{extra})",
            "features": str(features), "encoder": source.get("encoder", "?"),
            "data": source.get("data", {}).get("class_path", "?"), "split": source.get("split", "?"),
            "kind": acc.layout.kind, "items": str(acc.items) + _skipped_note(source, features),
            "tokens": str(acc.tokens),
            "temporal positions": f"{acc.num_positions}; position p covers {span.unit} "
                                  f"[{span.offset} + {span.stride}·p, +{span.size})"}


def _concept_metrics(metrics: str, sae: str, num_latents: int):
    """The rows of a ``vtrep concepts`` folder, refused when it was measured on another SAE."""
    from vtrep.reports.latent_metrics import read_concept_runs, run_rows

    runs = read_concept_runs(metrics)
    measured = runs["trained"].summary.get("sae")
    if measured is not None and Path(measured).resolve() != Path(sae).resolve():
        raise ValueError(f"metrics={metrics!r} was measured on the SAE {measured}, not on sae={sae!r}")
    if runs["trained"].summary["latents"] != num_latents:
        raise ValueError(f"metrics={metrics!r} has {runs['trained'].summary['latents']} latents, the SAE "
                         f"{num_latents}")
    rows, threshold = run_rows(runs)
    return runs, rows, threshold


def _metrics_html(out: Path, concept, chosen: list[int]) -> tuple[dict, str]:
    """Draw ``metrics_summary.png``; the reported latents' rows and the page's metrics section."""
    from vtrep.reports.concept_page import metrics_section
    from vtrep.reports.latent_metrics_figure import metrics_summary_figure

    if concept is None:
        return None, ""
    runs, rows, threshold = concept
    figure = metrics_summary_figure(runs, rows, threshold, out / "metrics_summary.png")
    by_latent = {r.latent: r for r in rows}
    return {k: by_latent[k] for k in chosen if k in by_latent}, metrics_section(rows, threshold, figure.name,
                                                                                 set(chosen))


def _check_counts(**counts: int) -> None:
    for name, value in counts.items():
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")


def _numbers(header: dict, selection: str, span, stats, item_names: dict[int, str]) -> dict:
    return {"header": header, "selection": selection, "span": asdict(span), "latents": [asdict(s) for s in stats],
            "item_names": {str(i): name for i, name in item_names.items()}}


def _write_json(path: Path, payload: dict) -> None:
    with open(path, "x") as handle:  # "x": never replace a file that appeared since the folder check
        json.dump(payload, handle, indent=1)


def sae_report(sae: str, features: str, output: str, latents: list[int] | None = None, top_latents: int = 8,
               top_items: int = 6, max_frames: int = 8, batch_size: int = 8192, min_item_fraction: float = 0.01,
               max_token_rate: float = 0.1, device: str = "cpu", metrics: str | None = None) -> Path:
    """Write the concept report into ``output`` and return the path of its ``report.html``.

    Args:
        sae: a saved SAE folder (``save_sae``).
        features: a feature folder written by ``vtrep extract`` (with ``source.json``).
        output: the report folder (created; refused when it already holds a report).
        latents: the latents to report, e.g. ``[3,17]``; default: ``top_latents`` latents on in
            ≥ ``min_item_fraction`` of the items (and ≥ 2) and ≤ ``max_token_rate`` of the tokens, with
            the highest mean activation when on (:func:`vtrep.reports.concepts.select_latents`).
        top_latents: how many latents to choose when ``latents`` is not given.
        top_items: top clips / series shown per latent.
        max_frames: frames per clip in the frame grids (evenly spaced).
        batch_size: tokens encoded at a time.
        min_item_fraction: the selection rule's floor on the fraction of items a latent is on in.
        max_token_rate: the selection rule's ceiling on the fraction of tokens (denser latents are skipped).
        device: where the SAE runs.
        metrics: a ``vtrep concepts`` output folder of this SAE: every live latent's temporal metrics join the
            page (sortable, filterable table and summary plot; the reported latents' table gains them too).
    """
    from vtrep.eval.feature_source import SourceItems, read_source
    from vtrep.reports.concept_page import report_page, write_report_page
    from vtrep.reports.concepts import check_latents, check_width, gather_activations, scan_features, select_latents
    from vtrep.sae.io import load_sae

    _check_counts(top_items=top_items, max_frames=max_frames, batch_size=batch_size)
    out = _output_folder(output)
    model = load_sae(sae).to(device)
    check_width(model, features)
    concept = None if metrics is None else _concept_metrics(metrics, sae, model.num_latents)
    source = read_source(features)
    chosen = None if latents is None else check_latents(latents, model.num_latents)
    acc = scan_features(model, features, top_items, batch_size, device)
    selection = "named on the command line"
    if chosen is None:
        chosen, selection = select_latents(acc, top_latents, min_item_fraction, max_token_rate)
    items = SourceItems(features)
    span = _span(acc, source, items)
    stats = [acc.stats(j, span) for j in chosen]
    files = _file_names(stats, source["kind"])
    _output_folder(output, [n for names in files.values() for n in names] + OWN_FILES)
    out.mkdir(parents=True, exist_ok=True)
    wanted = sorted({i for s in stats for i, _, _ in s.top_items})
    acts = gather_activations(model, features, chosen, wanted, batch_size, device)
    names = _class_names(items.data)
    summary = _draw(out, stats, files, acc, acts, items, source, span, max_frames,
                    None if latents is not None else max_token_rate, names)
    header = _header(sae, model, features, source, acc, span)
    item_names = {i: items.name(i) for i in wanted}  # what users look up: a clip's file, a series' split row
    _write_json(out / "concepts.json", _numbers(header, selection, span, stats, item_names))
    noun = "clip" if source["kind"] == "video" else "series"
    page = report_page(header, selection, stats, files, summary, span, noun, names, item_names,
                       *_metrics_html(out, concept, chosen))
    path = write_report_page(out, page)
    print(f"wrote {path} ({len(stats)} latents, {sum(len(f) for f in files.values()) + 1} PNGs)")
    return path


if __name__ == "__main__":
    from jsonargparse import CLI

    CLI(sae_report, as_positional=False)
