"""``vtrep probe``: linear-probe a saved encoder (and, for reference, the same encoder at random init)."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import torch

from vtrep.checks import positive, positive_int
from vtrep.probes.linear_probe import ProbeResult, extract_features, fit_linear_probe
from vtrep.io.pretrained import from_pretrained


def probe_encoder(encoder_dir: str, data: L.LightningDataModule, random_init: bool = False, epochs: int = 100,
                  base_lr: float = 0.1, probe_batch_size: int = 64, seed: int = 0) -> ProbeResult:
    """Extract pooled features of both splits with the frozen encoder and fit MAE's linear probe."""
    torch.manual_seed(seed)  # the random-init baseline is reproducible
    encoder = from_pretrained(encoder_dir, random_init=random_init)
    for param in encoder.parameters():
        param.requires_grad_(False)
    data.prepare_data()
    data.setup("fit")
    train_x, train_y = extract_features(encoder, data.feature_dataloader("train"))
    eval_x, eval_y = extract_features(encoder, data.feature_dataloader("val"))
    return fit_linear_probe(train_x, train_y, eval_x, eval_y, data.num_classes, epochs=epochs,
                            batch_size=probe_batch_size, base_lr=base_lr, seed=seed)


def probe(encoder: str, data: L.LightningDataModule, compare_random: bool = True, epochs: int = 100,
          base_lr: float = 0.1, probe_batch_size: int = 64, seed: int = 0, output: str | None = None) -> dict:
    """Linear-probe top-1 of a saved encoder.

    Args:
        encoder: folder with ``model.safetensors`` + ``config.json`` (written at the end of ``vtrep fit``).
        data: a video datamodule with ``feature_dataloader`` (e.g. the synthetic default or a folder dataset).
        compare_random: also probe the same architecture at random initialisation.
        epochs: probe training epochs over the cached features.
        base_lr: probe learning rate per 256 samples.
        probe_batch_size: probe batch size.
        seed: seed of the probe (and of the random-init encoder).
        output: optional JSON file for the results.
    """
    if not Path(encoder).is_dir():
        raise FileNotFoundError(f"encoder={encoder!r} is not a folder; pass the `encoder` folder that vtrep fit exports")
    positive_int("epochs", epochs)
    positive("base_lr", base_lr)
    positive_int("probe_batch_size", probe_batch_size)
    kwargs = dict(epochs=epochs, base_lr=base_lr, probe_batch_size=probe_batch_size, seed=seed)
    results = {"pretrained": probe_encoder(encoder, data, **kwargs).__dict__}
    if compare_random:
        results["random_init"] = probe_encoder(encoder, data, random_init=True, **kwargs).__dict__
    for name, res in results.items():
        print(f"linear probe top-1 [{name:>11}]: {100 * res['top1']:.1f}%  "
              f"(train {100 * res['train_top1']:.1f}%, {res['num_train']} train / {res['num_eval']} eval clips)")
    if output:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(json.dumps(results, indent=2))
    return results


def probe_cli(args: list[str] | None = None) -> dict:
    from jsonargparse import CLI

    return CLI(probe, args=args, as_positional=False)
