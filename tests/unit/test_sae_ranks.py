"""The SAE task under DDP: the downstream probe on every rank's clips, and one BatchTopK threshold for all ranks."""

from __future__ import annotations

import os
from functools import partial
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from vtrep.tasks.sae import PooledFeatures, SAETask

CLIPS, ROWS_PER_CLIP, D = 24, 6, 8


def rows() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    clip = torch.arange(CLIPS).repeat_interleave(ROWS_PER_CLIP)
    label = clip % 3
    x = torch.randn(len(clip), D, generator=gen) + 2.0 * torch.nn.functional.one_hot(label, D).float()
    return clip, label, x


def pooled_of(index: torch.Tensor) -> PooledFeatures:
    clip, label, x = rows()
    pooled = PooledFeatures()
    pooled.update(clip[index], label[index], x[index], 0.5 * x[index])
    return pooled


def test_merge_of_split_clips_equals_pooling_everything():
    order = torch.randperm(CLIPS * ROWS_PER_CLIP, generator=torch.Generator().manual_seed(1))
    halves = [pooled_of(order[: len(order) // 2]), pooled_of(order[len(order) // 2:])]  # clips split across both
    merged = PooledFeatures()
    merged.merge([h.clips for h in halves])
    whole = pooled_of(torch.arange(CLIPS * ROWS_PER_CLIP))
    assert sorted(merged.clips) == sorted(whole.clips)
    for c, (x_sum, x_hat_sum, count, label) in whole.clips.items():
        # float32 row sums grouped differently: equal up to rounding
        torch.testing.assert_close(merged.clips[c][0], x_sum, rtol=1e-6, atol=1e-5)
        torch.testing.assert_close(merged.clips[c][1], x_hat_sum, rtol=1e-6, atol=1e-5)
        assert merged.clips[c][2:] == [count, label]


def _rank(rank: int, port: int, queue) -> None:
    """One gloo rank: the probe over both ranks' clips, and a BatchTopK threshold update."""
    from lightning.pytorch.strategies import DDPStrategy

    from vtrep.sae import BatchTopKSAE

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        own = torch.arange(rank, CLIPS * ROWS_PER_CLIP, 2)  # every clip has rows on both ranks
        probe = SAETask.pooled_across_ranks(pooled_of(own)).probe()
        sae = BatchTopKSAE(8, 16, k=2)
        strategy = DDPStrategy()  # only its reduce is used: the process group above is already up
        fake_task = SimpleNamespace(device=torch.device("cpu"), trainer=SimpleNamespace(strategy=strategy))
        sae.set_rank_reduce(partial(SAETask.reduce_across_ranks, fake_task))  # as SAETask installs it
        codes = torch.zeros(4, 16)
        if rank == 1:  # rank 0 has nothing positive and must still take part in the collective
            codes[0, 3], codes[2, 5] = 0.7, 0.2
        sae.update_threshold(codes)
        queue.put((rank, probe, float(sae.threshold), int(sae.threshold_updates)))
    finally:
        dist.destroy_process_group()


def test_two_ranks_fit_one_probe_and_share_one_batchtopk_threshold():
    ctx = mp.get_context("spawn")  # a forked child can hang in OpenMP after the parent used its threads
    queue = ctx.Queue()
    procs = [ctx.Process(target=_rank, args=(r, 29500 + os.getpid() % 1000, queue)) for r in (0, 1)]
    for p in procs:
        p.start()
    results = sorted(queue.get(timeout=300) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    alone = pooled_of(torch.arange(CLIPS * ROWS_PER_CLIP)).probe()
    assert results[0][1] == results[1][1] == alone  # the probe of one process over every clip
    # the threshold is the smallest kept activation over both ranks, on both
    assert [r[2:] for r in results] == [(pytest.approx(0.2), 1)] * 2
