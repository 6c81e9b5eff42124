"""``vtrep import-videomae``: a ``transformers`` or original-layout VideoMAE checkpoint → a vtrep encoder folder.

The folder (``model.safetensors`` + ``config.json``) is what ``vtrep probe``, ``vtrep extract`` and
``from_pretrained`` read; the decoder, when the checkpoint has one, is saved beside it as
``decoder.safetensors`` with its ``MAEDecoderConfig`` in ``decoder.json`` (to continue pretraining), and
the conversion report as ``conversion_report.txt``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Literal

from safetensors.torch import save_file

from vtrep.interop.videomae_hf import import_hf_videomae
from vtrep.interop.videomae_original import import_original_videomae
from vtrep.io.atomic_write import atomic_new_folder, atomic_write
from vtrep.io.pretrained import save_pretrained


def import_videomae(source: str, output: str, layout: Literal["transformers", "original"] = "transformers",
                    img_size: int = 224, num_frames: int = 16, num_heads: int | None = None,
                    decoder_num_heads: int | None = None, strict: bool = True) -> Path:
    """Convert ``source`` and write ``output/encoder`` (+ decoder files and the report).

    Args:
        source: ``transformers``: a ``save_pretrained`` folder (``config.json`` + weights);
            ``original``: a ``.pth`` / ``.safetensors`` file of the MCG-NJU layout.
        output: a new folder (an existing ``output/encoder`` is refused, never overwritten).
        layout: which code base wrote ``source``.
        img_size, num_frames, num_heads, decoder_num_heads: original layout only — not stored in its
            weights (heads default to the published value for the width).
        strict: refuse any unmatched key (``False`` converts what matches and lists the rest in the report).
    """
    out = Path(output)
    if (out / "encoder").exists():
        raise FileExistsError(f"{out / 'encoder'} exists; import into a new folder")
    if layout == "transformers":
        backbone, decoder, report = import_hf_videomae(source, strict=strict)
    else:
        backbone, decoder, report = import_original_videomae(
            source, img_size=img_size, num_frames=num_frames, num_heads=num_heads,
            decoder_num_heads=decoder_num_heads, strict=strict)
    out.mkdir(parents=True, exist_ok=True)
    # every file atomically, encoder/ as a whole and last: a failure leaves no encoder/, so the import can be rerun
    if decoder is not None:
        tensors = {k: v.contiguous() for k, v in decoder.state_dict().items()}
        text = json.dumps(dataclasses.asdict(report.decoder_config), indent=2, default=str)
        atomic_write(out / "decoder.safetensors", lambda p: save_file(tensors, str(p)))
        atomic_write(out / "decoder.json", lambda p: p.write_text(text))
    atomic_write(out / "conversion_report.txt", lambda p: p.write_text(str(report) + "\n"))
    extra = {"imported_from": str(Path(source).resolve()), "layout": layout}
    atomic_new_folder(out / "encoder", lambda folder: save_pretrained(backbone, folder, extra=extra))
    print(report)
    print(f"wrote {out / 'encoder'}")
    return out


def import_cli(args: list[str] | None = None) -> Path:
    from vtrep.cli_messages import run_command

    return run_command(import_videomae, args)
