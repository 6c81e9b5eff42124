"""Online SAE training vs training from feature shards: tokens/s of each on this machine, and the encoder's share.

    VTREP_NUM_THREADS=2 python tools/bench/sae_online.py --output runs/bench/sae_online
    python tools/bench/sae_online.py --backbone configs/model/vit_micro_32px_p8t4.yaml --steps 30

Both paths are the product's: ``SAETask`` fitted by a Lightning ``Trainer`` on
:class:`~vtrep.eval.online_tokens.EncoderTokenDataModule` (clips → frozen encoder → shuffle buffer) or
on :class:`~datamodules.FeatureDataModule` (shards → shuffle buffer). The shards hold the tokens the
online datamodule encodes in one pass (written once, before timing, one shard per encoder batch), so
both SAEs see tokens of the same clips. The encoder is ``backbone`` at random initialisation (speed
does not depend on its weights) over the generated moving-sprite clips (``SyntheticVideoDataModule``,
decoded from the cache, one loader worker). Rounds alternate which path goes first; each round fits
``steps`` SAE steps per path after one untimed step. Reported: tokens/s of each path (total over the
rounds), their ratio, and the share of the online fit's wall time spent in the encoder forward
(``EncoderTokenDataModule.encode`` calls after the first step, host-timed; on a GPU after a synchronise).

Output: ``<output>/results.json`` and ``summary.md`` (the table); an existing result is refused.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import lightning as L
import torch
import yaml

from datamodules import FeatureDataModule, FeatureShardWriter, SyntheticVideoDataModule
from vtrep.eval.online_tokens import EncoderTokenDataModule
from vtrep.io.atomic_write import atomic_write
from vtrep.io.class_paths import import_class
from vtrep.io.pretrained import save_pretrained
from vtrep.sae import TopKSAE
from vtrep.tasks import SAETask


class StepClock(L.Callback):
    """Wall time from the end of the first (untimed) training batch to the end of the fit."""

    def __init__(self) -> None:
        self.start = self.end = None
        self.steps = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.start is None:
            self.start = time.perf_counter()
        else:
            self.steps += 1
        self.end = time.perf_counter()

    @property
    def seconds(self) -> float:
        return self.end - self.start


def fit_seconds(data, d_in: int, latents: int, k: int, steps: int, clock: StepClock) -> tuple[float, int]:
    """Wall seconds and steps of a timed ``SAETask`` fit of ``steps + 1`` steps on ``data``."""
    L.seed_everything(0, verbose=False)
    task = SAETask(TopKSAE(d_in, latents, k=k), export_sae=False, density_report=False)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=steps + 1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        num_sanity_val_steps=0, callbacks=[clock])
    trainer.fit(task, data)
    return clock.seconds, clock.steps


class EncodeTimer:
    """Adds up the wall time of ``EncoderTokenDataModule.encode`` calls made while ``clock`` runs."""

    def __init__(self, data: EncoderTokenDataModule, clock: StepClock) -> None:
        self.seconds, self.inner = 0.0, data.encode

        def timed(batch, first_item):
            start = time.perf_counter()
            chunk = self.inner(batch, first_item)
            if chunk["features"].is_cuda:
                torch.cuda.synchronize()
            if clock.start is not None:
                self.seconds += time.perf_counter() - start
            return chunk

        data.encode = timed


def prepare(output: Path, backbone: str, clips_per_batch: int, batch_size: int) -> tuple[str, dict]:
    """A random-init encoder folder and the online datamodule's settings."""
    config = yaml.safe_load(Path(backbone).read_text())
    encoder = import_class(config["class_path"], where=backbone)(**config.get("init_args", {}))
    encoder_dir = save_pretrained(encoder, output / "encoder")
    geometry = {key: encoder.config[key] for key in ("num_frames", "img_size")}
    data = dict(num_per_class=64, size=geometry["img_size"], batch_size=clips_per_batch, num_workers=1, **geometry)
    return str(encoder_dir), data


def write_shards(online: EncoderTokenDataModule, root: Path) -> int:
    online.setup("fit")
    writer = None
    for chunk in online.chunks("train", epoch=0):
        if writer is None:
            writer = FeatureShardWriter(root, online.meta_names, shard_rows=len(chunk["features"]))
        writer.add(chunk["features"], chunk["meta"])
    writer.close()
    return len(list(root.glob("shard_*.safetensors")))


def main(output: str = "runs/bench/sae_online", backbone: str = "configs/model/vit_micro_32px.yaml",
         clips_per_batch: int = 8, batch_size: int = 1024, buffer_rows: int = 8192, expansion: int = 16,
         k: int = 32, steps: int = 40, rounds: int = 3) -> dict:
    """Args:
        output: result folder (refused when it holds a result).
        backbone: model config piece of the encoder (``class_path`` + ``init_args``).
        clips_per_batch: clips per encoder batch. batch_size: token rows per SAE step.
        buffer_rows: shuffle buffer of both paths. expansion, k: TopK SAE with ``expansion·D`` latents.
        steps: timed SAE steps per path per round. rounds: alternating rounds.
    """
    out = Path(output)
    if (out / "results.json").exists():
        raise FileExistsError(f"{out}/results.json exists: choose another --output")
    out.mkdir(parents=True, exist_ok=True)
    encoder_dir, clip_args = prepare(out, backbone, clips_per_batch, batch_size)
    cache = out / "clips"

    def online() -> EncoderTokenDataModule:
        return EncoderTokenDataModule(encoder_dir, SyntheticVideoDataModule(cache_dir=str(cache), **clip_args),
                                      batch_size=batch_size, buffer_rows=buffer_rows)

    shards_dir = out / "shards"
    if not (shards_dir / "index.json").exists():
        write_shards(online(), shards_dir)
    d = online().feature_width
    totals = {"online": [0.0, 0], "shards": [0.0, 0]}
    encode_seconds = 0.0
    for round_index in range(rounds):
        for path in (("online", "shards") if round_index % 2 == 0 else ("shards", "online")):
            clock = StepClock()
            if path == "online":
                data = online()
                timer = EncodeTimer(data, clock)
            else:
                data = FeatureDataModule(str(shards_dir), batch_size=batch_size, buffer_rows=buffer_rows, val_shards=0)
            seconds, done = fit_seconds(data, d, expansion * d, k, steps, clock)
            totals[path][0] += seconds
            totals[path][1] += done
            if path == "online":
                encode_seconds += timer.seconds
    return report(out, totals, encode_seconds, dict(backbone=backbone, d=d, latents=expansion * d, k=k,
                                                    batch_size=batch_size, buffer_rows=buffer_rows,
                                                    clips_per_batch=clips_per_batch, steps=steps, rounds=rounds,
                                                    threads=torch.get_num_threads()))


def report(out: Path, totals: dict, encode_seconds: float, settings: dict) -> dict:
    rate = {path: steps * settings["batch_size"] / seconds for path, (seconds, steps) in totals.items()}
    result = {"settings": settings, "tokens_per_s": rate, "online_over_shards": rate["online"] / rate["shards"],
              "encoder_share": encode_seconds / totals["online"][0]}
    lines = ["| path | tokens/s |", "| --- | ---: |",
             f"| online (clips → encoder → buffer → SAE) | {rate['online']:,.0f} |",
             f"| shards (disk → buffer → SAE) | {rate['shards']:,.0f} |",
             "", f"online / shards: {result['online_over_shards']:.2f}×; encoder forward "
             f"{100 * result['encoder_share']:.0f}% of the online fit's time "
             f"({settings['backbone']}, D {settings['d']}, {settings['latents']} latents, k {settings['k']}, "
             f"{settings['batch_size']} tokens a step, {settings['threads']} threads)"]
    summary = "\n".join(lines) + "\n"
    atomic_write(out / "summary.md", lambda tmp: tmp.write_text(summary))
    atomic_write(out / "results.json", lambda tmp: tmp.write_text(json.dumps(result, indent=2)))
    print(summary)
    return result


if __name__ == "__main__":
    from jsonargparse import CLI

    CLI(main, as_positional=False)
