"""ETTh1: PatchTST-style pretraining, then fine-tuning and linear probing per horizon; test MSE / MAE beside PatchTST/64.

    python tools/bench/etth1_forecast.py                       # defaults: the figures in the README
    python tools/bench/etth1_forecast.py --modes [finetune] --horizons [96]

Standard protocol: 12/4/4-month split, channels standardised with training statistics, all seven
channels forecast (multivariate), metrics on the standardised scale over every test window (PatchTST's
loader drops the last incomplete test batch; we keep it). The encoder is pretrained once on the
training split (masked patches, ratio 0.4). Per horizon, as PatchTST's self-supervised fine-tuning:
the flatten head is first trained on the frozen encoder (``probe``, a linear probe), then the whole
model is fine-tuned from there (``finetune``). In each stage the epoch with the lowest validation
MSE is kept (early stopping on the validation split) and that model is tested. With several
``--finetune_lrs`` each is tried from the probe and the one with the lowest validation MSE is reported.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
PATCHTST64 = {96: (0.370, 0.400), 192: (0.413, 0.429), 336: (0.422, 0.440), 720: (0.447, 0.468)}


def make_encoder(context_length: int, patch_length: int, d_model: int, depth: int, num_heads: int, dropout: float):
    from vtrep.backbones import PatchTSTEncoder

    return PatchTSTEncoder(context_length=context_length, patch_length=patch_length, stride=patch_length,
                           d_model=d_model, depth=depth, num_heads=num_heads, mlp_ratio=2.0, dropout=dropout)


def trainer(epochs: int, root: Path, patience: int | None = None):
    import lightning as L
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    callbacks = []
    if patience is not None:
        callbacks = [ModelCheckpoint(dirpath=root, monitor="val/mse", mode="min", save_top_k=1),
                     EarlyStopping(monitor="val/mse", mode="min", patience=patience)]
    return L.Trainer(max_epochs=epochs, accelerator="auto", devices=1, logger=False,
                     enable_checkpointing=patience is not None, callbacks=callbacks, enable_progress_bar=False,
                     enable_model_summary=False, default_root_dir=root, num_sanity_val_steps=0)


def fit_and_test(task, data, epochs: int, root: Path, patience: int) -> dict:
    """Train with early stopping on validation MSE, test the best epoch; ``task`` ends with its weights."""
    tuner = trainer(epochs, root, patience)
    tuner.fit(task, data)
    best = tuner.checkpoint_callback
    metrics = tuner.test(task, data, ckpt_path="best", verbose=False)[0]
    return {"mse": metrics["test/mse"], "mae": metrics["test/mae"], "val_mse": float(best.best_model_score),
                  "best_epoch": int(Path(best.best_model_path).stem.split("epoch=")[1].split("-")[0])}


def print_table(results: dict) -> None:
    print("| horizon | mode | vtrep MSE | vtrep MAE | PatchTST/64 MSE | PatchTST/64 MAE |")
    print("| --- | --- | --- | --- | --- | --- |")
    for key, r in results.items():
        horizon, mode = key.split("/")
        ref = PATCHTST64.get(int(horizon), (float("nan"), float("nan")))
        print(f"| {horizon} | {mode} | {r['mse']:.3f} | {r['mae']:.3f} | {ref[0]:.3f} | {ref[1]:.3f} |")


def run(csv: str = str(ROOT.parent / "shared/data/ETT-small/ETTh1.csv"), horizons: list[int] = [96, 192, 336, 720],
        modes: list[str] = ["finetune", "probe"], split: str = "ett_hourly", context_length: int = 512,
        patch_length: int = 12, d_model: int = 32, depth: int = 3, num_heads: int = 4, dropout: float = 0.2,
        pretrain_epochs: int = 10, probe_epochs: int = 10, finetune_epochs: int = 10, patience: int = 3,
        batch_size: int = 64, pretrain_lr: float = 1e-3, finetune_lrs: list[float] = [1e-4], probe_lr: float = 1e-3,
        head_dropout: float = 0.2, output_dir: str = "runs/etth1", pretrained: str | None = None, seed: int = 0,
        threads: int | None = None) -> dict:
    """Pretrain once (masked patches, ratio 0.4), train a head per horizon and mode, print the table.

    ``pretrained`` skips pretraining and uses that ``SeriesMAETask`` checkpoint (e.g. ``runs/etth1/pretrain.ckpt``).
    """
    import lightning as L

    from datamodules import ForecastingDataModule
    from vtrep.masking import SeriesPatchMasking
    from vtrep.tasks import SeriesForecastTask, SeriesMAETask

    if threads:
        torch.set_num_threads(threads)
    unknown = set(modes) - {"finetune", "probe"}
    if unknown:
        raise ValueError(f"modes must be among 'finetune', 'probe'; got {sorted(unknown)}")
    out = Path(output_dir)
    sizes = (context_length, patch_length, d_model, depth, num_heads, dropout)
    L.seed_everything(seed)
    if pretrained is None:
        data = ForecastingDataModule(csv, context_length, max(horizons), split, batch_size=batch_size)
        pretrain = SeriesMAETask(make_encoder(*sizes), SeriesPatchMasking(0.4), lr=pretrain_lr, weight_decay=0.0)
        fit = trainer(pretrain_epochs, out)
        fit.fit(pretrain, train_dataloaders=data)
        checkpoint = out / "pretrain.ckpt"
        fit.save_checkpoint(checkpoint)
    else:  # an earlier run's pretraining with the same sizes (the encoder load below checks them)
        checkpoint = Path(pretrained)
    results = {}
    for horizon in horizons:
        L.seed_everything(seed)
        data = ForecastingDataModule(csv, context_length, horizon, split, batch_size=batch_size)

        def make_task(mode: str, lr: float):
            return SeriesForecastTask(make_encoder(*sizes), horizon, encoder_checkpoint=str(checkpoint),
                                      freeze_encoder=mode == "probe", head_dropout=head_dropout, lr=lr)

        probe = make_task("probe", probe_lr)
        stages = {"probe": fit_and_test(probe, data, probe_epochs, out / f"{horizon}_probe", patience)}
        if "finetune" in modes:  # PatchTST's fine-tuning starts from the linear probe's head
            tuned = []
            for lr in finetune_lrs:
                task = make_task("finetune", lr)
                task.load_state_dict(probe.state_dict())
                tuned.append(fit_and_test(task, data, finetune_epochs, out / f"{horizon}_finetune_{lr:g}", patience))
            stages["finetune"] = min(tuned, key=lambda m: m["val_mse"])
            stages["finetune"]["val_mse_by_lr"] = {lr: m["val_mse"] for lr, m in zip(finetune_lrs, tuned)}
        for mode in modes:
            results[f"{horizon}/{mode}"] = stages[mode]
            print(f"H={horizon} {mode}: MSE {stages[mode]['mse']:.3f} MAE {stages[mode]['mae']:.3f}", flush=True)
    print_table(results)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    from jsonargparse import CLI

    CLI(run, as_positional=False)
