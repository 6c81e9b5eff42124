from types import SimpleNamespace

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from vtrep.backbones import create_video_vit
from vtrep.decoders import MAEDecoderConfig
from vtrep.masking import MaskOutput, TubeMasking
from vtrep.optim import (
    WarmupCosine,
    effective_batch_size,
    scaled_lr,
    weight_decay_groups,
)
from vtrep.tasks import VideoMAETask


def tiny_task(**kwargs) -> VideoMAETask:
    backbone = create_video_vit("micro", img_size=32, num_frames=4, depth=1)
    return VideoMAETask(backbone, TubeMasking(0.75), MAEDecoderConfig(32, 1, 2), export_encoder=False, **kwargs)


class RandomClips(L.LightningDataModule):
    def __init__(self, batch_size: int = 4, n: int = 16) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.data = TensorDataset(torch.randn(n, 3, 4, 32, 32), torch.zeros(n, dtype=torch.long))

    def train_dataloader(self):
        return DataLoader(self.data, batch_size=self.batch_size)


def test_warmup_cosine_shape():
    f = WarmupCosine(total_steps=110, warmup_steps=10, min_ratio=0.1)
    assert f(0) == 0.0 and f(5) == pytest.approx(0.5) and f(10) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.1 + 0.9 * 0.5)
    assert f(110) == pytest.approx(0.1) and f(500) == pytest.approx(0.1)
    values = [f(s) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_effective_batch_counts_devices_and_accumulation():
    trainer = SimpleNamespace(world_size=8, accumulate_grad_batches=4)
    assert effective_batch_size(trainer, 16) == 512
    assert scaled_lr(1.5e-4, 512) == pytest.approx(3e-4)


def test_initial_lr_is_scaled_by_accumulated_batch(tmp_path):
    task = tiny_task(base_lr=1e-3)
    seen = {}

    class Capture(L.Callback):
        def on_train_start(self, trainer, pl_module):
            seen["lr"] = trainer.optimizers[0].param_groups[0]["initial_lr"]

    trainer = L.Trainer(max_steps=1, accumulate_grad_batches=2, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[Capture()],
                        default_root_dir=tmp_path)
    trainer.fit(task, datamodule=RandomClips(batch_size=4))
    assert seen["lr"] == pytest.approx(1e-3 * 8 / 256)


def test_weight_decay_groups_exclude_norms_biases_tokens():
    task = tiny_task()
    decay, no_decay = weight_decay_groups(task, 0.05)
    names = {id(p): n for n, p in task.named_parameters()}
    no_decay_names = {names[id(p)] for p in no_decay["params"]}
    assert "decoder.mask_token" in no_decay_names
    assert all(n.endswith("bias") or "norm" in n or "mask_token" in n for n in no_decay_names)
    assert all(p.ndim >= 2 for p in decay["params"]) and decay["weight_decay"] == 0.05


def test_training_step_reduces_loss_on_a_fixed_batch():
    task = tiny_task()
    video = torch.randn(4, 3, 4, 32, 32)
    opt = torch.optim.AdamW(task.parameters(), lr=3e-3)
    torch.manual_seed(1)
    losses = []
    for _ in range(30):
        torch.manual_seed(1)  # same mask every step
        _, mask, rec = task(video)
        opt.zero_grad()
        rec.loss.backward()
        opt.step()
        losses.append(rec.loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_aux_loss_from_strategy_is_added():
    class WithAux(TubeMasking):
        def forward(self, *args, **kwargs) -> MaskOutput:
            out = super().forward(*args, **kwargs)
            out.aux_loss = torch.tensor(2.5)
            return out

    task = tiny_task()
    task.masking = WithAux(0.75)
    _, mask, rec = task(torch.randn(2, 3, 4, 32, 32))
    assert task.loss_parts(mask, rec)[0].item() == pytest.approx(rec.loss.item() + 2.5)


def test_reconstruction_keeps_visible_pixels():
    task = tiny_task()
    video = torch.randn(2, 3, 4, 32, 32).clamp(-2, 2)
    with torch.no_grad():
        pred, mask, _ = task(video)
        original, masked, recon = task.reconstruct(video, pred, mask)
    assert original.shape == masked.shape == recon.shape == video.shape
    visible = ~mask.mask.view(2, 2, 1, 2, 1, 2, 1).expand(2, 2, 2, 2, 16, 2, 16).reshape(2, 4, 32, 32)
    for c in range(3):
        assert torch.allclose(recon[:, c][visible], original[:, c][visible])
        assert (masked[:, c][~visible] == 0.5).all()


@pytest.mark.parametrize("kwargs, message", [
    (dict(base_lr=0.0), "base_lr"),
    (dict(warmup_fraction=1.0), "warmup_fraction"),
    (dict(batch_size_for_lr=0), "batch_size_for_lr"),
])
def test_bad_task_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny_task(**kwargs)
