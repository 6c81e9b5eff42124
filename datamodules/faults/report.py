"""The skip report: ``skipped_videos.json`` (machine-readable) and ``skipped_videos.txt`` (for people).

Both are rewritten whole, through a temporary file and a rename, at the end of every pass that
skipped something, so a run stopped at any point leaves a complete report of the passes so far.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from datamodules.faults.skips import SkippedVideo
from vtrep.io.atomic_write import atomic_write

REPORT_NAME = "skipped_videos"
EXAMPLES = 3  # skipped files named in an error message


def format_examples(skipped: Sequence[SkippedVideo]) -> str:
    return ", ".join(f"{s.path!r} ({s.kind})" for s in skipped) or "none"


def pass_label(split: str, epoch: int, stage: str | None) -> str:
    """``train epoch 3`` (``... (sanity check)`` for Lightning's pre-training check; ``train extraction`` for
    ``vtrep extract``'s one pass), in messages and the report."""
    if stage == "extract":
        return f"{split} extraction"
    return f"{split} epoch {epoch}" + (" (sanity check)" if stage == "sanity_check" else "")


def format_report(passes: Sequence[dict[str, Any]]) -> str:
    """Readable text: one block per pass (split, epoch, counts), then one line per skipped file."""
    lines = []
    for entry in passes:
        partial = "" if entry["complete"] else ", pass not completed"
        lines.append(f"{pass_label(entry['split'], entry['epoch'], entry['stage'])}: skipped {entry['skipped']} of "
                     f"{entry['attempted']} videos ({entry['fraction']:.1%}; max_skip_fraction "
                     f"{entry['max_skip_fraction']:g}){partial}")
        if entry["substituted_batches"]:
            lines.append(f"  {entry['substituted_batches']} batch(es) had no usable video and were replaced by "
                         "another clip of the split")
        for item in entry["files"]:
            times = f" [x{item['times']}]" if item["times"] > 1 else ""
            lines.append(f"  {item['kind']:<16} {item['path']}{times}")
            lines.append(f"  {'':<16} {item['reason']}")
    return "\n".join(lines) + "\n"


def write_skip_report(folder: Path, passes: Sequence[dict[str, Any]], suffix: str = "") -> Path:
    """Write the report of ``passes`` into ``folder``; returns the JSON file's path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    json_path = folder / f"{REPORT_NAME}{suffix}.json"
    atomic_write(json_path, lambda tmp: tmp.write_text(json.dumps({"passes": list(passes)}, indent=2) + "\n"))
    atomic_write(folder / f"{REPORT_NAME}{suffix}.txt", lambda tmp: tmp.write_text(format_report(passes)))
    return json_path
