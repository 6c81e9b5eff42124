"""ETTh1: PatchTST-style pretraining, then fine-tuning per horizon; test MSE / MAE beside PatchTST/64.

    python tools/bench/etth1_forecast.py --pretrain_epochs 5 --finetune_epochs 3

Standard protocol: 12/4/4-month split, channels standardised with training statistics, all seven
channels forecast (multivariate), metrics on the standardised scale over the test windows.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
PATCHTST64 = {96: (0.370, 0.400), 192: (0.413, 0.429), 336: (0.422, 0.440), 720: (0.447, 0.468)}


def make_encoder(context_length: int, patch_length: int, d_model: int, depth: int, num_heads: int):
    from vtrep.backbones import PatchTSTEncoder

    return PatchTSTEncoder(context_length=context_length, patch_length=patch_length, stride=patch_length,
                           d_model=d_model, depth=depth, num_heads=num_heads, mlp_ratio=2.0, dropout=0.2)


def trainer(epochs: int, root: Path):
    import lightning as L

    return L.Trainer(max_epochs=epochs, accelerator="auto", devices=1, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, default_root_dir=root)


def run(csv: str = str(ROOT.parent / "shared/data/ETT-small/ETTh1.csv"), horizons: list[int] = [96, 192, 336, 720],
        context_length: int = 336, patch_length: int = 12, d_model: int = 128, depth: int = 3, num_heads: int = 16,
        pretrain_epochs: int = 5, finetune_epochs: int = 3, batch_size: int = 64, lr: float = 1e-4,
        output_dir: str = "runs/etth1", seed: int = 0) -> dict:
    """Pretrain once (masked patches, ratio 0.4), fine-tune per horizon, print the table."""
    import lightning as L

    from datamodules import ForecastingDataModule
    from vtrep.masking import SeriesPatchMasking
    from vtrep.tasks import SeriesForecastTask, SeriesMAETask

    out = Path(output_dir)
    L.seed_everything(seed)
    data = ForecastingDataModule(csv, context_length, max(horizons), batch_size=batch_size)
    pretrain = SeriesMAETask(make_encoder(context_length, patch_length, d_model, depth, num_heads),
                             SeriesPatchMasking(0.4), lr=lr)
    fit = trainer(pretrain_epochs, out)
    fit.fit(pretrain, data)
    checkpoint = out / "pretrain.ckpt"
    fit.save_checkpoint(checkpoint)
    results = {}
    for horizon in horizons:
        L.seed_everything(seed)
        data = ForecastingDataModule(csv, context_length, horizon, batch_size=batch_size)
        task = SeriesForecastTask(make_encoder(context_length, patch_length, d_model, depth, num_heads), horizon,
                                  encoder_checkpoint=str(checkpoint), lr=lr)
        tuner = trainer(finetune_epochs, out)
        tuner.fit(task, data)
        metrics = tuner.test(task, data, verbose=False)[0]
        results[horizon] = {"mse": metrics["test/mse"], "mae": metrics["test/mae"]}
        print(f"H={horizon}: MSE {metrics['test/mse']:.3f} MAE {metrics['test/mae']:.3f}", flush=True)
    print("| horizon | vtrep MSE | vtrep MAE | PatchTST/64 MSE | PatchTST/64 MAE |")
    print("| --- | --- | --- | --- | --- |")
    for horizon, r in results.items():
        ref = PATCHTST64.get(horizon, (float("nan"), float("nan")))
        print(f"| {horizon} | {r['mse']:.3f} | {r['mae']:.3f} | {ref[0]:.3f} | {ref[1]:.3f} |")
    (out / "results.json").write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    from jsonargparse import CLI

    CLI(run, as_positional=False)
