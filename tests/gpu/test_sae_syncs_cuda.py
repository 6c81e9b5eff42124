"""SAE training steps on CUDA wait on the device only in the first (initialisation) step.

``torch.cuda.set_sync_debug_mode("error")`` raises on any synchronising call (``.item()``, ``bool(t)``,
a blocking copy, a ``nonzero``), so a step that passes under it runs asynchronously.
"""

from __future__ import annotations

import contextlib

import pytest
import torch

from vtrep.sae import BatchTopKSAE, TopKSAE
from vtrep.tasks import SAETask

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none is visible)")]


@contextlib.contextmanager
def syncs_are_errors():
    torch.cuda.synchronize()
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(previous)


def train_steps(task: SAETask, optimiser, x: torch.Tensor, steps: int, start: int) -> None:
    """The hooks and order of ``SAETask``'s Lightning step, without Lightning's own logging."""
    for step in range(start, start + steps):
        task.on_train_batch_start(x, step)
        loss = task.sae.loss(x).loss
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        task.on_before_optimizer_step(optimiser)
        optimiser.step()
        task.on_train_batch_end(None, x, step)


@pytest.mark.parametrize("sae", [
    lambda: TopKSAE(64, 1024, k=16, sparse_path=False, dead_after_tokens=512),
    lambda: BatchTopKSAE(64, 1024, k=16, dead_after_tokens=512),
], ids=["topk-dense", "batchtopk"])
def test_training_steps_after_the_first_do_not_sync(sae):
    torch.manual_seed(0)
    task = SAETask(sae()).cuda()
    optimiser = torch.optim.Adam(task.sae.parameters(), lr=1e-3)
    x = torch.randn(256, 64, device="cuda")
    train_steps(task, optimiser, x, 1, 0)  # initialisation: input scale and b_dec from the batch
    with syncs_are_errors():
        train_steps(task, optimiser, x, 4, 1)  # 1024 inputs > 512: AuxK switches on inside the window
    out = task.sae.loss(x)
    assert "auxk" in out.parts and torch.isfinite(out.loss)


def test_topk_sparse_path_steps_do_not_sync():
    """The sparse path's backward uses a sparse-dense product; a sync there would show up here."""
    torch.manual_seed(0)
    task = SAETask(TopKSAE(64, 1024, k=16, sparse_path=True, dead_after_tokens=512)).cuda()
    optimiser = torch.optim.Adam(task.sae.parameters(), lr=1e-3)
    x = torch.randn(256, 64, device="cuda")
    train_steps(task, optimiser, x, 1, 0)
    with syncs_are_errors():
        train_steps(task, optimiser, x, 4, 1)


def test_batchtopk_eval_encode_does_not_sync():
    sae = BatchTopKSAE(64, 1024, k=16).cuda()
    x = torch.randn(256, 64, device="cuda")
    sae.loss(x)  # calibrates the threshold
    sae.eval()
    with syncs_are_errors(), torch.no_grad():
        sae.loss(x)
        sae.encode(x)
