"""Does the data loader keep the model fed? Clips/s delivered by a config's training loader vs clips/s
the model's training step consumes, on this machine.

    python tools/bench/loader_throughput.py                                   # the quickstart (default data)
    python tools/bench/loader_throughput.py --run_config configs/experiment/fight_surv_pretrain.yaml

Loader: the config's ``train_dataloader()`` (its workers, transforms and decoding), timed over
``batches`` batches after the first (worker start-up excluded). Model: the config's task doing
forward (``VideoMAETask.forward`` + ``loss_parts``), backward and an AdamW step on one fixed batch,
timed over ``steps`` steps after ``warmup``. Both run in this process one after the other with the
same thread count, so the ratio is what a real run sees only roughly: there the loader's workers and
the step share the cores. Goal: loader ≥ 2× the step's rate.
"""

from __future__ import annotations

import time

import torch

from vtrep.io.batches import batch_input


def loader_rate(loader, batches: int) -> float:
    iterator = iter(loader)
    first = next(iterator)  # worker start-up and the first decode are excluded
    clips, start = 0, time.perf_counter()
    for _ in range(batches):
        try:
            batch = next(iterator)
        except StopIteration:
            iterator = iter(loader)
            batch = next(iterator)
        clips += batch_input(batch, "video").shape[0]
    del first
    return clips / (time.perf_counter() - start)


def step_rate(task, video: torch.Tensor, steps: int, warmup: int) -> float:
    optimizer = torch.optim.AdamW(task.parameters(), lr=1e-4)
    task.train()
    for i in range(warmup + steps):
        if i == warmup:
            start = time.perf_counter()
        _, mask, rec = task(video)
        loss = task.loss_parts(mask, rec)[0]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return steps * video.shape[0] / (time.perf_counter() - start)


def main(run_config: str = "configs/experiment/quickstart.yaml", batches: int = 30, steps: int = 10, warmup: int = 2,
         threads: int = 2) -> dict:
    """Print and return both rates and their ratio."""
    from vtrep.eval.encoders import load_task

    torch.set_num_threads(threads)
    task, data = load_task(run_config)
    data.prepare_data()
    data.setup("fit")
    loader = data.train_dataloader()
    batch = next(iter(loader))
    video = batch_input(batch, "video")
    model = step_rate(task, video, steps, warmup)
    delivered = loader_rate(loader, batches)
    print(f"{run_config}: batch {video.shape[0]}, clip {tuple(video.shape[1:])}, {threads} threads, "
          f"{getattr(data, 'num_workers', 0)} loader workers")
    print(f"loader {delivered:,.1f} clips/s | training step {model:,.1f} clips/s | ratio {delivered / model:.2f}x")
    return {"loader_clips_per_s": delivered, "step_clips_per_s": model, "ratio": delivered / model}


if __name__ == "__main__":
    from jsonargparse import CLI

    CLI(main, as_positional=False)
