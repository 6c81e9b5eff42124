"""Saving SAEs: vtrep's artefact format, and export to / import from SAELens's on-disk format.

- :func:`save_sae` writes vtrep's artefact (``model.safetensors`` + ``config.json``, see
  :mod:`vtrep.io.pretrained`) of a copy whose input scale is folded into the weights, so the saved SAE
  takes raw encoder features; :func:`load_sae` reads it back.
- :func:`export_saelens` writes SAELens's layout (``sae_weights.safetensors`` with ``W_enc (d_in, d_sae)``,
  ``W_dec (d_sae, d_in)``, ``b_enc``, ``b_dec`` and, for JumpReLU, ``threshold``; ``cfg.json`` with
  ``d_in``, ``d_sae``, ``architecture``, ``apply_b_dec_to_input = true``, ``normalize_activations =
  "none"``, ``dtype``, ``device``, ``k`` for TopK, and ``meta``). TopK and Matryoshka export as
  ``topk``, ReLU-L1 as ``standard``, JumpReLU as ``jumprelu``, BatchTopK as the ``jumprelu`` it
  converts to for inference; AbsTopK has no SAELens counterpart (signed codes) and is refused.
  :func:`import_saelens` reads that layout into the matching vtrep class; a TopK saved with SAELens's
  ``rescale_acts_by_decoder_norm = true`` (its TopK training default: checkpoints, and inference SAEs
  whose decoder rows are not unit-norm) has the decoder norms folded in, which leaves codes and
  outputs unchanged.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import torch
from safetensors.torch import save_file

from vtrep.io.pretrained import from_pretrained, save_pretrained
from vtrep.io.torch_files import read_state_dict
from vtrep.sae.base import SparseAutoencoder

SAELENS_WEIGHTS, SAELENS_CONFIG = "sae_weights.safetensors", "cfg.json"


def folded_copy(sae: SparseAutoencoder) -> SparseAutoencoder:
    """A copy with the input scale folded into its weights (same outputs on raw inputs)."""
    out = copy.deepcopy(sae).cpu()
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


def _architecture(sae: SparseAutoencoder) -> tuple[SparseAutoencoder, str, dict]:
    from vtrep.sae import AbsTopKSAE, BatchTopKSAE, JumpReLUSAE, ReLUL1SAE, TopKSAE

    if isinstance(sae, BatchTopKSAE):
        return sae.to_jumprelu(), "jumprelu", {}
    if isinstance(sae, AbsTopKSAE):
        raise ValueError("AbsTopKSAE has signed codes, which no SAELens architecture represents")
    if isinstance(sae, TopKSAE):  # also Matryoshka: its inference is a TopK
        return sae, "topk", {"k": sae.k}
    if isinstance(sae, JumpReLUSAE):
        return sae, "jumprelu", {}
    if isinstance(sae, ReLUL1SAE):
        return sae, "standard", {}
    raise ValueError(f"no SAELens architecture for {type(sae).__name__}")


def export_saelens(sae: SparseAutoencoder, path: str | os.PathLike) -> Path:
    """Write ``sae`` in SAELens's format under ``path`` (input scale folded in)."""
    model, architecture, extra = _architecture(folded_copy(sae))
    model = folded_copy(model)
    tensors = {"W_enc": model.W_enc, "W_dec": model.W_dec, "b_enc": model.b_enc, "b_dec": model.b_dec}
    if architecture == "jumprelu":
        tensors["threshold"] = model.threshold
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().float().contiguous() for k, v in tensors.items()}, str(out / SAELENS_WEIGHTS))
    cfg = {"d_in": model.d_in, "d_sae": model.num_latents, "architecture": architecture, "dtype": "float32",
           "device": "cpu", "apply_b_dec_to_input": True, "normalize_activations": "none",
           "reshape_activations": "none", "meta": {"model_name": None, "hook_name": None,
                                                   "exported_by": f"vtrep {type(sae).__name__}"}, **extra}
    (out / SAELENS_CONFIG).write_text(json.dumps(cfg, indent=2))
    return out


def import_saelens(path: str | os.PathLike) -> SparseAutoencoder:
    """A vtrep SAE from SAELens's ``cfg.json`` + ``sae_weights.safetensors`` (topk, standard, jumprelu)."""
    from vtrep.sae import JumpReLUSAE, ReLUL1SAE, TopKSAE

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
    d_in, d_sae, architecture = cfg["d_in"], cfg["d_sae"], cfg["architecture"]
    if architecture == "jumprelu":
        return JumpReLUSAE.from_weights(weights["W_enc"], weights["b_enc"], weights["W_dec"], weights["b_dec"],
                                        weights["threshold"]).eval()
    builders = {"topk": lambda: TopKSAE(d_in, d_sae, k=int(cfg["k"])), "standard": lambda: ReLUL1SAE(d_in, d_sae)}
    if architecture not in builders:
        raise ValueError(f"SAELens architecture {architecture!r} is not supported; supported: "
                         f"{sorted([*builders, 'jumprelu'])}")
    if architecture == "topk" and cfg.get("rescale_acts_by_decoder_norm", False):
        weights = _fold_decoder_norm(weights)
    sae = builders[architecture]()
    with torch.no_grad():
        for name in ("W_enc", "W_dec", "b_enc", "b_dec"):
            getattr(sae, name).copy_(weights[name])
    return sae.eval()


def _fold_decoder_norm(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """SAELens's ``rescale_acts_by_decoder_norm`` (its TopK training default) multiplies latent ``i``'s
    pre-activation by ``‖W_dec[i]‖`` before TopK and divides its code by it before decoding. Folding
    the norms in — ``W_enc[:, i]`` and ``b_enc[i]`` times the norm, ``W_dec[i]`` divided by it — gives
    the plain TopK with the same codes and outputs (SAELens's own ``fold_W_dec_norm``)."""
    norm = weights["W_dec"].float().norm(dim=1).clamp_min(1e-8)  # SAELens's get_W_dec_norm clamp
    return {**weights, "W_enc": weights["W_enc"].float() * norm, "b_enc": weights["b_enc"].float() * norm,
            "W_dec": weights["W_dec"].float() / norm[:, None]}
