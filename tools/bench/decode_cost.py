"""What does a training clip cost to decode, per backend, with and without repeated sampling, against the codec's
own sequential rate and the training step — on real clips (the fight clips) and on generated long clips.

    python tools/bench/decode_cost.py --root ../shared/data/fight_surv --output runs/bench/decode_cost

Every loader figure is the fit config's own ``train_dataloader()`` (its decoding, sampling, transforms and
collate: the product path), rebuilt with one setting changed (``backend``, ``repeats``, ``repeat_mode``,
``num_workers``). Rows:

* ``sequential``: PyAV decoding whole files front to back (decode only, and decode + RGB conversion): the
  codec's rate on one core, the physical limit a clip loader is measured against;
* ``loader``: one process (``num_workers=0``: one core's worth of a worker) per backend and R: clips/s,
  milliseconds per clip, frames decoded for the clips/s (requested frames, not the frames a sequential
  decoder passes over), and the per-clip cost relative to R = 1 (goal: ≤ 0.4 at R = 4);
* ``step``: the config's training step (forward, backward, AdamW) in clips/s, and the loader with the
  config's and this machine's worker count against it (goal: ≥ 2×), R > 1 with shared frames, from the videos as
  given and from the datamodule's copy resized to ``--short_side``. The loader's workers and the step are
  timed one after the other; a real run shares the cores between them;
* ``ViT-B``: the per-clip cost at VideoMAE ViT-B's clip (16 frames at rate 4, 224²) and the workers a GPU step
  of ViT-B would need, from a stated GPU rate (``--gpu_clips_per_s``; see :func:`vit_b_clips_per_s`).

Writes ``decode_cost.md`` (the README's table) and ``decode_cost.json`` under ``--output``, atomically.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch

from vtrep.io.atomic_write import atomic_write
from loader_throughput import loader_rate, step_rate  # same folder: run as a script
from vtrep.io.batches import batch_input

ROOT = Path(__file__).resolve().parents[2]


def sequential_rate(paths: list[str], convert: bool) -> float:
    """Frames/s of PyAV decoding ``paths`` whole, one thread (with ``convert``: to RGB arrays as the loader does)."""
    import av

    from datamodules.video.decoding import _pyav_rgb

    frames, start = 0, time.perf_counter()
    for path in paths:
        with av.open(path) as container:
            stream = container.streams.video[0]
            stream.thread_type, stream.codec_context.thread_count = "SLICE", 1
            for frame in container.decode(stream):
                if convert:
                    _pyav_rgb(frame)
                frames += 1
    return frames / (time.perf_counter() - start)


def rebuilt(data, **changes):
    """The config's datamodule with ``changes`` (it saved its arguments as hyperparameters)."""
    module = type(data)(**{**dict(data.hparams), **changes})
    module.prepare_data()
    module.setup("fit")
    return module


def available_backends() -> list[str]:
    from datamodules.video.decoding import BACKENDS

    return [name for name in BACKENDS if name != "auto"]


def loader_rows(data, backends: list[str], repeats: list[int], clips: int, label: str) -> list[dict]:
    """One row per backend × R (× mode for R > 1): one process decoding ``clips`` clips through the loader."""
    rows = []
    for backend in backends:
        base = None
        for r in repeats:
            for mode in (["independent"] if r == 1 else ["independent", "shared_frames"]):
                module = rebuilt(data, backend=backend, repeats=r, repeat_mode=mode, num_workers=0)
                batches = max(2, clips // (module.batch_size * r))
                try:
                    rate = loader_rate(module.train_dataloader(), batches)
                except Exception as error:  # noqa: BLE001 - a backend that cannot read these files is reported
                    print(f"{label} {backend} R={r}: failed ({type(error).__name__}: {error})")
                    break
                base = rate if r == 1 else base
                rows.append({"clips": label, "backend": backend, "repeats": r, "mode": mode, "clips_per_s": rate,
                             "ms_per_clip": 1000 / rate, "frames_per_s": rate * module.num_frames,
                             "cost_vs_r1": (base / rate) if base else None})
                print(rows[-1])
    return rows


def vit_b_clips_per_s(peak_tflops: float, mfu: float) -> tuple[float, float]:
    """GPU clips/s of a VideoMAE ViT-B pretraining step (16 × 224², tubelet 2 × 16², mask 0.9, decoder 4 × 384),
    from its FLOPs: ``(gflop_per_clip, clips_per_s)``.

    Forward FLOPs per clip ≈ 2 × (encoder parameters × visible tokens + decoder parameters × all tokens) plus
    attention (4 × tokens² × width per layer); the step is 3× the forward (backward twice the forward).
    """
    tokens, visible = 1568, 157
    enc = 12 * 12 * 768 ** 2 * visible * 2 + 12 * 4 * visible ** 2 * 768
    dec = 4 * 12 * 384 ** 2 * tokens * 2 + 4 * 4 * tokens ** 2 * 384
    gflop = 3 * (enc + dec) / 1e9
    return gflop, peak_tflops * 1e12 * mfu / (gflop * 1e9)


def long_clips(folder: Path, count: int, frames: int) -> str:
    """``count`` generated H.264 clips of ``frames`` frames at 480 × 360 (a fight clip's size, GOP 12)."""
    import numpy as np

    from datamodules.video.decoding import write_video

    for label in ("a", "b"):
        (folder / label).mkdir(parents=True, exist_ok=True)
        for i in range(count // 2):
            path = folder / label / f"long{i}.mp4"
            if not path.exists():
                rng = np.random.default_rng(i)
                base = rng.integers(0, 255, (360, 480, 3), dtype=np.uint8)
                video = np.stack([np.roll(base, 3 * t, axis=1) for t in range(frames)])
                write_video(str(path), video, fps=25, gop=12, crf=23)
    return str(folder)


def worker_rows(data, task, workers: list[int], repeats: list[int], steps: int, clips: int) -> list[dict]:
    """The training step's clips/s beside the loader's with ``workers`` worker processes, at each R (shared frames)."""
    video = batch_input(next(iter(rebuilt(data, num_workers=0).train_dataloader())), "video")
    step = step_rate(task, video, steps, warmup=2)
    rows = []
    for r in repeats:
        for w in workers:
            module = rebuilt(data, num_workers=w, repeats=r, repeat_mode="shared_frames")
            rate = loader_rate(module.train_dataloader(), max(2, clips // (module.batch_size * r)))
            rows.append({"workers": w, "repeats": r, "loader_clips_per_s": rate, "step_clips_per_s": step,
                         "ratio": rate / step})
            print(rows[-1])
    return rows


def markdown(result: dict) -> str:
    seq, lines = result["sequential"], []
    lines += [f"Sequential PyAV decode of {seq['files']} fight clips, one thread: {seq['decode']:,.0f} frames/s "
              f"(decode only), {seq['decode_rgb']:,.0f} frames/s (decode + RGB conversion).", "",
              "| clips | backend | R | mode | clips/s per worker | ms per clip | frames/s per worker | cost per clip vs R = 1 |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in result["loader"]:
        ratio = "" if row["cost_vs_r1"] is None else f"{row['cost_vs_r1']:.2f}"
        lines.append(f"| {row['clips']} | {row['backend']} | {row['repeats']} | {row['mode']} | "
                     f"{row['clips_per_s']:.1f} | {row['ms_per_clip']:.1f} | {row['frames_per_s']:,.0f} | {ratio} |")
    lines += ["", "| videos | loader workers | R | loader clips/s | training step clips/s | loader / step |",
              "| --- | --- | --- | --- | --- | --- |"]
    for row in result["workers"]:
        source = f"copy at short side {row['short_side']}" if "short_side" in row else "as given"
        lines.append(f"| {source} | {row['workers']} | {row['repeats']} | {row['loader_clips_per_s']:.1f} | "
                     f"{row['step_clips_per_s']:.1f} | {row['ratio']:.2f}x |")
    gpu = result["vit_b"]
    lines += ["", f"ViT-B on a GPU (on paper): {gpu['gflop_per_clip']:.0f} GFLOP per clip step at "
              f"{gpu['peak_tflops']:g} TFLOP/s × {gpu['mfu']:.0%} MFU = {gpu['gpu_clips_per_s']:,.0f} clips/s; "
              f"at the measured {gpu['ms_per_clip']:.1f} ms per 16 × 224² clip ({gpu['backend']}, R = {gpu['repeats']}, "
              f"{gpu['mode']}) that needs {gpu['workers_needed']:.0f} loader workers (cores)."]
    return "\n".join(lines) + "\n"


def main(root: str = "../shared/data/fight_surv", run_config: str = "configs/experiment/fight_surv_pretrain.yaml",
         output: str = "runs/bench/decode_cost", clips: int = 96, repeats: list[int] = [1, 4], steps: int = 5,
         threads: int = 2, long_count: int = 8, long_frames: int = 300, gpu_peak_tflops: float = 989.0,
         gpu_mfu: float = 0.4, short_side: int = 128) -> dict:
    """Run every stage and write ``decode_cost.md`` / ``.json`` under ``output``.

    ``gpu_peak_tflops``: dense bf16 peak of the GPU the estimate is for (H100 SXM: 989); ``gpu_mfu``: the
    fraction of it a ViT-B step reaches (0.4 is a good transformer step, stated, not measured here).
    ``short_side``: also measure the fight clips through the datamodule's resized copy at this short side
    (0: not).
    """
    from vtrep.eval.encoders import load_task

    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)  # per-worker figures: one core, as a DataLoader worker has
    task, data = load_task(run_config)
    data = rebuilt(data, root=root, short_side=None)  # the clips as given; the copy is measured below
    paths = sorted(path for path, _ in data.train_samples)[:40]
    backends = available_backends()
    result = {"run_config": run_config, "root": root, "threads_for_step": threads,
              "sequential": {"files": len(paths), "decode": sequential_rate(paths, False),
                             "decode_rgb": sequential_rate(paths, True)},
              "loader": loader_rows(data, backends, repeats, clips, "fight")}
    if short_side:  # the same clips decoded from the datamodule's resized copy (built once, not timed)
        result["loader"] += loader_rows(rebuilt(data, short_side=short_side), backends, repeats, clips,
                                        f"fight, copy at short side {short_side}")
    long_root = long_clips(out / "long_clips", long_count, long_frames)
    result["loader"] += loader_rows(rebuilt(data, root=long_root, val_fraction=0.25), backends, repeats, clips,
                                    f"generated {long_frames}-frame")
    vit_b = loader_rows(rebuilt(data, img_size=224, sampling_rate=4, batch_size=4), backends, repeats, clips // 2,
                        "fight, ViT-B clip (16 × 224², rate 4)")
    result["loader"] += vit_b
    best = min(vit_b, key=lambda row: row["ms_per_clip"])
    gflop, gpu_rate = vit_b_clips_per_s(gpu_peak_tflops, gpu_mfu)
    result["vit_b"] = {**{k: best[k] for k in ("backend", "repeats", "mode", "ms_per_clip")},
                       "gflop_per_clip": gflop, "peak_tflops": gpu_peak_tflops, "mfu": gpu_mfu,
                       "gpu_clips_per_s": gpu_rate, "workers_needed": gpu_rate * best["ms_per_clip"] / 1000}
    torch.set_num_threads(threads)
    workers = sorted({1, data.num_workers, os.cpu_count() or 1})
    result["workers"] = worker_rows(data, task, workers, repeats, steps, clips)
    if short_side:
        result["workers"] += [{**row, "short_side": short_side} for row in
                              worker_rows(rebuilt(data, short_side=short_side), task, workers, repeats, steps, clips)]
    text = markdown(result)
    atomic_write(out / "decode_cost.json", lambda tmp: tmp.write_text(json.dumps(result, indent=1)))
    atomic_write(out / "decode_cost.md", lambda tmp: tmp.write_text(text))
    print(text)
    return result


if __name__ == "__main__":
    from jsonargparse import CLI

    CLI(main, as_positional=False)
