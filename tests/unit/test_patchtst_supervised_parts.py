"""PatchTST/64's supervised details: end padding, residual attention, its epoch decay, the training loader."""

import lightning as L
import pytest
import torch

from datamodules import ForecastingDataModule
from vtrep.attention.patterns import LocalWindow
from vtrep.backbones import PatchTSTEncoder
from vtrep.backbones.series_transformer import SeriesTransformerBlock
from vtrep.layers.series_patch import encoder_patches
from vtrep.optim import PatchTSTEpochDecay
from vtrep.tasks import SeriesForecastTask


def test_pad_end_gives_patchtst64_geometry_and_replicates_the_last_step():
    encoder = PatchTSTEncoder(context_length=512, patch_length=16, stride=8, d_model=8, depth=1, num_heads=2,
                              pad_end=True)
    assert encoder.num_patches == 64  # PatchTST/64: (512 - 16) // 8 + 1 + 1
    assert PatchTSTEncoder(context_length=512, patch_length=16, stride=8, d_model=8, depth=1,
                           num_heads=2).num_patches == 63
    x = torch.randn(2, 3, 512)
    patches = encoder_patches(x, encoder, None)
    assert patches.shape == (2, 3, 64, 16)
    torch.testing.assert_close(patches[:, :, 0], x[..., :16])  # no left trim: 512 + 8 steps fit 64 patches
    torch.testing.assert_close(patches[:, :, -1, :8], x[..., -8:])
    torch.testing.assert_close(patches[:, :, -1, 8:], x[..., -1:].expand(2, 3, 8))
    assert encoder(patches).shape == (2, 3, 64, 8)


def _block(residual: bool) -> SeriesTransformerBlock:
    torch.manual_seed(0)
    return SeriesTransformerBlock(8, 2, 2.0, 0.0, "layer", residual_attention=residual).eval()


def test_residual_attention_first_layer_equals_plain_attention_and_carries_scores():
    x = torch.randn(3, 5, 8)
    plain, residual = _block(False), _block(True)
    out_plain, no_scores = plain(x)
    out_residual, scores = residual(x)
    assert no_scores is None and scores.shape == (3, 2, 5, 5)
    torch.testing.assert_close(out_residual, out_plain)
    # the next layer adds the previous scores before its softmax: by hand
    prev = torch.randn(3, 2, 5, 5)
    _, carried = residual(x, prev)
    torch.testing.assert_close(carried, scores + prev)
    q, k, v = residual.qkv(x).view(3, 5, 3, 2, 4).permute(2, 0, 3, 1, 4)
    attn = (((q @ k.transpose(-2, -1)) / 2 + prev).softmax(-1) @ v).transpose(1, 2).reshape(3, 5, 8)
    y = residual.norm_attn(x + residual.proj(attn))
    torch.testing.assert_close(residual(x, prev)[0], residual.norm_ffn(y + residual.ffn(y)))


def _attention_branch(block: SeriesTransformerBlock, x: torch.Tensor) -> torch.Tensor:
    """What the block adds to ``x`` before its first norm: the attention output after its dropouts."""
    seen = []
    handle = block.norm_attn.register_forward_pre_hook(lambda module, args: seen.append(args[0] - x))
    block(x)
    handle.remove()
    return seen[0]


def test_proj_dropout_drops_the_attention_output_twice_as_patchtst_does():
    torch.manual_seed(0)
    x = torch.randn(64, 16, 32)
    once = SeriesTransformerBlock(32, 4, 2.0, 0.3, "layer").train()
    twice = SeriesTransformerBlock(32, 4, 2.0, 0.3, "layer", proj_dropout=0.3).train()
    kept_once = (_attention_branch(once, x) != 0).float().mean().item()
    kept_twice = (_attention_branch(twice, x) != 0).float().mean().item()
    assert abs(kept_once - 0.7) < 0.01 and abs(kept_twice - 0.49) < 0.01  # PatchTST: (1 - 0.3)² of it survives
    assert isinstance(once.proj_dropout, torch.nn.Identity)  # no extra random draws by default
    twice.load_state_dict(once.state_dict())  # no new weights: checkpoints load across the option
    torch.testing.assert_close(twice.eval()(x)[0], once.eval()(x)[0])
    with pytest.raises(ValueError, match="proj_dropout must be in"):
        PatchTSTEncoder(context_length=64, patch_length=16, stride=16, d_model=8, num_heads=2, proj_dropout=1.0)


def test_encoder_chains_scores_through_its_layers():
    def build(residual):
        torch.manual_seed(0)
        return PatchTSTEncoder(context_length=32, patch_length=8, stride=8, d_model=8, depth=2, num_heads=2,
                               dropout=0.0, residual_attention=residual).eval()

    patches = torch.randn(2, 1, 4, 8)
    plain, residual = build(False), build(True)
    layers_plain, layers_residual = plain.forward_layers(patches), residual.forward_layers(patches)
    torch.testing.assert_close(layers_residual[1], layers_plain[1])  # no scores below the first layer
    assert not torch.allclose(layers_residual[2], layers_plain[2])  # the second layer sees the first's scores
    with pytest.raises(ValueError, match="residual_attention .* attention_pattern=LocalWindow"):
        PatchTSTEncoder(context_length=32, patch_length=8, stride=8, d_model=8, depth=1, num_heads=2,
                        residual_attention=True, attention_pattern=LocalWindow(window=1))


def test_patchtst_epoch_decay_matches_its_code():
    decay = PatchTSTEpochDecay()
    assert [round(decay(e), 6) for e in range(6)] == [0.04, 1.0, 1.0, 1.0, 0.9, 0.81]


def test_forecast_task_steps_patchtst_schedule_per_epoch():
    encoder = PatchTSTEncoder(context_length=32, patch_length=8, stride=8, d_model=8, depth=1, num_heads=2)
    task = SeriesForecastTask(encoder, horizon=4, schedule="patchtst_epochs", lr=1e-3)
    data = ForecastingDataModule(context_length=32, horizon=4, batch_size=64)
    trainer = L.Trainer(max_epochs=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0)
    seen = []
    task.on_train_epoch_start = lambda: seen.append(task.optimizers().param_groups[0]["lr"])
    trainer.fit(task, data)
    assert seen == pytest.approx([4e-5, 1e-3, 1e-3])
    with pytest.raises(ValueError, match="schedule must be"):
        SeriesForecastTask(encoder, horizon=4, schedule="cosine")


def test_patchtsts_never_stepped_one_cycle_leaves_adam_at_beta1_095_which_adam_betas_reproduces():
    # PatchTST's exp_main: Adam(lr), then OneCycleLR(max_lr=lr, pct_start 0.3), never stepped under lradj type3
    weight = torch.nn.Parameter(torch.zeros(2))
    adam = torch.optim.Adam([weight], lr=1e-4)
    torch.optim.lr_scheduler.OneCycleLR(adam, max_lr=1e-4, steps_per_epoch=57, epochs=100, pct_start=0.3)
    assert adam.param_groups[0]["betas"] == (0.95, 0.999) and adam.param_groups[0]["lr"] == pytest.approx(4e-6)
    encoder = PatchTSTEncoder(context_length=32, patch_length=8, stride=8, d_model=8, depth=1, num_heads=2)
    default = SeriesForecastTask(encoder, horizon=4, schedule="patchtst_epochs").configure_optimizers()
    assert default["optimizer"].param_groups[0]["betas"] == (0.9, 0.999)  # what the README's tables used
    patchtst = SeriesForecastTask(encoder, horizon=4, schedule="patchtst_epochs", adam_betas=(0.95, 0.999))
    assert patchtst.configure_optimizers()["optimizer"].param_groups[0]["betas"] == (0.95, 0.999)
    for bad in ((1.0, 0.999), (0.9, -0.1), (0.9,)):
        with pytest.raises(ValueError, match="adam_betas"):
            SeriesForecastTask(encoder, horizon=4, adam_betas=bad)


def test_forecasting_loader_drops_the_last_short_training_batch():
    data = ForecastingDataModule(context_length=32, horizon=4, batch_size=64, drop_last=True)
    data.setup()
    train = len(data.windows["train"])
    assert train % 64 and len(data.train_dataloader()) == train // 64
    kept = ForecastingDataModule(context_length=32, horizon=4, batch_size=64)
    kept.setup()
    assert len(kept.train_dataloader()) == train // 64 + 1
