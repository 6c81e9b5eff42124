"""vtrep on the UCR datasets in ``../shared`` next to published TS2Vec / T-Loss / TNC / 1-NN-DTW accuracies.

    python tools/bench/ucr_benchmark.py                           # TS2VecTask (default): the README table
    python tools/bench/ucr_benchmark.py --method mae --steps 400  # PatchTST-style masked patch MAE

Per dataset, as TS2Vec evaluates: an encoder is pretrained on the training split only, train and
test series are encoded and max-pooled into one vector each, and those are classified with
TS2Vec's RBF-SVM protocol (``vtrep.eval.series_classification``); test accuracy is printed beside
the published figures, with the means over the datasets run. ``ts2vec`` follows TS2Vec's training
budget (200 iterations, 600 above 100 000 values; batch 8; lr 1e-3); ``mae`` trains the patch
encoder for ``steps`` (its representation: ``--layers last`` or ``all``).
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def patch_length_for(length: int, patches: int = 16) -> int:
    """About ``patches`` patches per series, at least 4 steps each."""
    return max(4, length // patches)


def make_encoder(length: int, kind: str, patches: int, stride_fraction: float, d_model: int, depth: int,
                 norm: str = "batch"):
    from vtrep.backbones import PatchMLPEncoder, PatchTSTEncoder

    patch = patch_length_for(length, patches)
    stride = max(1, round(patch * stride_fraction))
    if kind == "patchtst":
        return PatchTSTEncoder(context_length=length, patch_length=patch, stride=stride, d_model=d_model, depth=depth,
                               num_heads=4, mlp_ratio=2.0, dropout=0.1, norm=norm)
    if kind == "pits":
        return PatchMLPEncoder(context_length=length, patch_length=patch, stride=stride, d_model=d_model, dropout=0.1)
    raise ValueError(f"encoder must be 'patchtst' or 'pits', got {kind!r}")


def pretrain(train_x: torch.Tensor, encoder: torch.nn.Module, steps: int, batch_size: int, lr: float, seed: int,
             mask_ratio: float, complementary: bool, contrastive_weight: float):
    from vtrep.masking import ComplementaryPatchMasking, SeriesPatchMasking
    from vtrep.optim import WarmupCosine
    from vtrep.tasks import SeriesMAETask

    masking = ComplementaryPatchMasking(mask_ratio) if complementary else SeriesPatchMasking(mask_ratio)
    task = SeriesMAETask(encoder, masking, lr=lr, contrastive_weight=contrastive_weight)
    optimizer = torch.optim.AdamW(task.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(steps, steps // 10, 0.0))
    generator = torch.Generator().manual_seed(seed)
    task.train()
    for _ in range(steps):
        batch = train_x[torch.randint(0, len(train_x), (min(batch_size, len(train_x)),), generator=generator)]
        loss = task.loss(*task(batch))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return encoder


def ts2vec_iterations(train_x: torch.Tensor) -> int:
    """TS2Vec's default budget: 200 iterations for at most 100 000 values, else 600."""
    return 200 if train_x.numel() <= 100_000 else 600


def pretrain_ts2vec(train_x: torch.Tensor, steps: int | None, batch_size: int, lr: float,
                    output_dim: int = 320) -> torch.nn.Module:
    """TS2Vec as its ``fit``: shuffled epochs of ``min(batch, n)`` series (last short batch dropped), AdamW, SWA."""
    from vtrep.backbones import DilatedConvEncoder
    from vtrep.tasks import TS2VecTask

    task = TS2VecTask(DilatedConvEncoder(train_x.shape[1], output_dim=output_dim), lr=lr).train()
    optimizer = task.configure_optimizers()
    steps = steps or ts2vec_iterations(train_x)
    batch, done = min(batch_size, len(train_x)), 0
    while done < steps:
        order = torch.randperm(len(train_x))
        for start in range(0, len(order) - batch + 1, batch):
            loss = task.loss(train_x[order[start:start + batch]])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            task.update_average()
            done += 1
            if done == steps:
                break
    return task.representation_encoder


def reference_table(path: Path) -> dict[str, dict]:
    with path.open() as handle:
        return {row["dataset"]: row for row in csv.DictReader(handle)}


def benchmark(data_root: str = str(ROOT.parent / "shared/data/UCRArchive_2018"),
              reference: str = str(ROOT.parent / "shared/reference/ucr_dev_reference.csv"),
              datasets: list[str] | None = None, method: str = "ts2vec", steps: int | None = None,
              batch_size: int | None = None, encoder: str = "patchtst",
              patches: int = 16, stride_fraction: float = 1.0, d_model: int = 64, depth: int = 3, lr: float = 1e-3,
              mask_ratio: float = 0.4, complementary: bool = False, contrastive_weight: float = 0.0,
              norm: str = "batch", layers: str = "last", protocol: str = "svm", seed: int = 0, threads: int | None = None,
              output: str | None = None) -> dict:
    """Pretrain, extract and classify each dataset; print one table with the published numbers and means."""
    from datamodules.series.ucr import load_classification
    from vtrep.eval.series_classification import evaluate_representations
    from vtrep.eval.series_features import series_representations

    if threads:
        torch.set_num_threads(threads)
    refs = reference_table(Path(reference))
    names = datasets or list(refs)
    rows = {}
    for name in names:
        start = time.perf_counter()
        train, test, _ = load_classification(data_root, name)
        train_x, test_x = torch.from_numpy(train.x), torch.from_numpy(test.x)
        if method == "mae":  # patch encoders take no NaN; TS2Vec's encoder masks NaN steps itself
            train_x, test_x = torch.nan_to_num(train_x), torch.nan_to_num(test_x)
        torch.manual_seed(seed)
        if method == "ts2vec":
            model = pretrain_ts2vec(train_x, steps, batch_size or 8, lr)
        elif method == "mae":
            model = make_encoder(train_x.shape[-1], encoder, patches, stride_fraction, d_model, depth, norm)
            pretrain(train_x, model, steps or 400, batch_size or 16, lr, seed, mask_ratio, complementary,
                     contrastive_weight)
        else:
            raise ValueError(f"method must be 'ts2vec' or 'mae', got {method!r}")
        features = [series_representations(model, x, layers=layers).numpy() for x in (train_x, test_x)]
        result = evaluate_representations(features[0], train.y, features[1], test.y, protocol, seed)
        rows[name] = {"vtrep": result.accuracy, "seconds": time.perf_counter() - start,
                      **{k: float(refs[name][k]) for k in ("ts2vec", "tloss", "dtw_1nn") if name in refs}}
        print(f"{name}: {result.accuracy:.3f} ({rows[name]['seconds']:.0f} s)", flush=True)
    print_table(rows)
    if output:
        Path(output).write_text(json.dumps(rows, indent=2))
    return rows


def print_table(rows: dict) -> None:
    print("| dataset | vtrep | TS2Vec | T-Loss | 1-NN-DTW |")
    print("| --- | --- | --- | --- | --- |")
    for name, r in rows.items():
        print(f"| {name} | {r['vtrep']:.3f} | {r.get('ts2vec', float('nan')):.3f} | {r.get('tloss', float('nan')):.3f} "
              f"| {r.get('dtw_1nn', float('nan')):.3f} |")
    means = {k: sum(r[k] for r in rows.values()) / len(rows) for k in ("vtrep", "ts2vec", "tloss", "dtw_1nn")
             if all(k in r for r in rows.values())}
    print("| **mean** | " + " | ".join(f"{means.get(k, float('nan')):.3f}" for k in ("vtrep", "ts2vec", "tloss",
                                                                                  "dtw_1nn")) + " |")


if __name__ == "__main__":
    from jsonargparse import CLI

    CLI(benchmark, as_positional=False)
