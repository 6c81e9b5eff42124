"""Saving SAEs: vtrep's artefact format, and export to / import from SAELens's on-disk format.

- :func:`save_sae` writes vtrep's artefact (``model.safetensors`` + ``config.json``, see
  :mod:`vtrep.io.pretrained`) of a copy whose input scale is folded into the weights, so the saved SAE
  takes raw encoder features; :func:`load_sae` reads it back.
- :func:`export_saelens` writes SAELens's layout (``sae_weights.safetensors`` with ``W_enc (d_in, d_sae)``,
  ``W_dec (d_sae, d_in)``, ``b_enc``, ``b_dec`` and, for JumpReLU, ``threshold``; ``cfg.json`` with
  ``d_in``, ``d_sae``, ``architecture``, ``apply_b_dec_to_input = true``, ``normalize_activations =
  "none"``, ``dtype``, ``device``, ``k`` for TopK, and ``meta``). TopK and Matryoshka export as
  ``topk``, ReLU-L1 as ``standard``, JumpReLU as ``jumprelu``, BatchTopK as the ``jumprelu`` it
  converts to for inference; AbsTopK has no SAELens counterpart (signed codes) and is refused. Each
  variant declares this (``saelens_architecture``, ``saelens_form``); no list of classes here.
  :func:`import_saelens` reads that layout into the class registered for its architecture; a TopK
  saved with SAELens's ``rescale_acts_by_decoder_norm = true`` (its TopK training default: checkpoints,
  and inference SAEs
  whose decoder rows are not unit-norm) has the decoder norms folded in, which leaves codes and
  outputs unchanged.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

from safetensors.torch import save_file

from vtrep.io.atomic_write import atomic_write
from vtrep.io.pretrained import from_pretrained, save_pretrained
from vtrep.io.torch_files import read_state_dict
from vtrep.sae.base import SAELENS_LOADERS, SparseAutoencoder

SAELENS_WEIGHTS, SAELENS_CONFIG = "sae_weights.safetensors", "cfg.json"


def folded_copy(sae: SparseAutoencoder) -> SparseAutoencoder:
    """A single-process copy with the input scale folded into its weights (same outputs on raw inputs).

    The copy has no cross-rank reduction (a task's collective is neither copied nor kept).
    """
    hook = sae._rank_reduce
    out = copy.deepcopy(sae, memo={} if hook is None else {id(hook): None}).cpu()
    out.fold_input_scale()
    return out.eval()


def save_sae(sae: SparseAutoencoder, path: str | os.PathLike) -> Path:
    """vtrep artefact of ``sae`` (input scale folded); the model passed in is not modified."""
    return save_pretrained(folded_copy(sae), path, extra={"kind": "sae"})


def load_sae(path: str | os.PathLike) -> SparseAutoencoder:
    sae = from_pretrained(path)
    if not isinstance(sae, SparseAutoencoder):
        raise ValueError(f"{path} holds a {type(sae).__name__}, not a sparse autoencoder")
    return sae.eval()


def export_saelens(sae: SparseAutoencoder, path: str | os.PathLike) -> Path:
    """Write ``sae`` in SAELens's format under ``path`` (input scale folded in), each file atomically.

    The variant declares its SAELens form (``saelens_architecture``, :meth:`~SparseAutoencoder.saelens_form`).
    Everything is prepared before the first write, and the weights are written before ``cfg.json``, so a
    failure leaves an existing export as it was.
    """
    model, extra = folded_copy(sae).saelens_form()
    architecture = type(sae).saelens_architecture
    model = folded_copy(model)
    tensors = {"W_enc": model.W_enc, "W_dec": model.W_dec, "b_enc": model.b_enc, "b_dec": model.b_dec}
    if architecture == "jumprelu":
        tensors["threshold"] = model.threshold
    tensors = {k: v.detach().float().contiguous() for k, v in tensors.items()}
    cfg = {"d_in": model.d_in, "d_sae": model.num_latents, "architecture": architecture, "dtype": "float32",
           "device": "cpu", "apply_b_dec_to_input": True, "normalize_activations": "none",
           "reshape_activations": "none", "meta": {"model_name": None, "hook_name": None,
                                                   "exported_by": f"vtrep {type(sae).__name__}"}, **extra}
    text = json.dumps(cfg, indent=2)
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / SAELENS_WEIGHTS, lambda p: save_file(tensors, str(p)))
    atomic_write(out / SAELENS_CONFIG, lambda p: p.write_text(text))
    return out


def import_saelens(path: str | os.PathLike) -> SparseAutoencoder:
    """A vtrep SAE from SAELens's ``cfg.json`` + ``sae_weights.safetensors``: the class registered for its
    ``architecture`` (``saelens_loader``: topk, standard, jumprelu) builds itself (``from_saelens``)."""
    import vtrep.sae  # noqa: F401  (every variant registered)

    folder = Path(path)
    for name in (SAELENS_CONFIG, SAELENS_WEIGHTS):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name} not found: a SAELens SAE folder has {SAELENS_CONFIG} and "
                                    f"{SAELENS_WEIGHTS}")
    try:
        cfg = json.loads((folder / SAELENS_CONFIG).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{folder / SAELENS_CONFIG} is not valid JSON: {err}") from err
    weights = read_state_dict(folder / SAELENS_WEIGHTS)  # safetensors only; a truncated file is named
    if cfg.get("normalize_activations", "none") != "none" or not cfg.get("apply_b_dec_to_input", True):
        raise ValueError("only SAELens SAEs with normalize_activations='none' and apply_b_dec_to_input=true "
                         f"can be imported, got {cfg.get('normalize_activations')!r} / {cfg.get('apply_b_dec_to_input')!r}")
    architecture = cfg["architecture"]
    if architecture not in SAELENS_LOADERS:
        raise ValueError(f"SAELens architecture {architecture!r} is not supported; supported: "
                         f"{sorted(SAELENS_LOADERS)}")
    return SAELENS_LOADERS[architecture].from_saelens(cfg, weights).eval()
