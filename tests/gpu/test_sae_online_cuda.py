"""Online SAE training on CUDA: the frozen encoder runs on the device in bf16 autocast, the tokens stay on
the device through the shuffle buffer, and SAETask trains one SAE per layer from them."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from datamodules import SyntheticVideoDataModule
from vtrep.backbones.video_vit import VideoViT
from vtrep.eval.online_tokens import EncoderTokenDataModule
from vtrep.io.pretrained import save_pretrained
from vtrep.sae import TopKSAE
from vtrep.tasks import SAETask

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none is visible)")]


def test_online_tokens_are_bf16_on_the_device_and_train_an_sae_per_layer(tmp_path):
    encoder = save_pretrained(VideoViT(img_size=32, num_frames=8, patch_size=8, tubelet_size=2, embed_dim=64, depth=2,
                                       num_heads=2), tmp_path / "encoder")
    clips = SyntheticVideoDataModule(num_per_class=8, num_frames=8, size=32, img_size=32, batch_size=4, num_workers=0,
                                     cache_dir=str(tmp_path / "cache"))
    data = EncoderTokenDataModule(str(encoder), clips, layers=[1, -1], batch_size=128, buffer_rows=256)
    task = SAETask(TopKSAE(64, 256, k=8), density_report=False, layers=data.layer_names)
    seen = []

    class Record(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen.append((batch["features"].device.type, batch["features"].dtype))

    trainer = L.Trainer(accelerator="gpu", devices=1, max_steps=6, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, limit_val_batches=1, num_sanity_val_steps=0,
                        callbacks=[Record()], default_root_dir=str(tmp_path))
    trainer.fit(task, data)
    expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    assert seen and all(entry == ("cuda", expected) for entry in seen), seen
    assert (tmp_path / "sae" / "block1" / "model.safetensors").is_file()
    assert torch.isfinite(torch.tensor(float(trainer.logged_metrics["val/output/fvu"])))
