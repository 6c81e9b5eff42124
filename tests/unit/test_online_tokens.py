"""Online SAE training from a live encoder: the same token stream as shards, several layers in one pass."""

import lightning as L
import pytest
import torch

from datamodules import SyntheticVideoDataModule
from datamodules.features.shards import FeatureDataModule, FeatureShardWriter
from datamodules.features.shuffle_buffer import ShuffleBuffer
from vtrep.backbones.video_vit import VideoViT
from vtrep.eval import online_tokens
from vtrep.eval.online_tokens import EncoderTokenDataModule
from vtrep.io.pretrained import save_pretrained
from vtrep.sae import TopKSAE
from vtrep.sae.io import load_sae
from vtrep.tasks import SAETask

TINY = dict(img_size=32, num_frames=8, patch_size=8, tubelet_size=2, embed_dim=32, depth=2, num_heads=2)


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    torch.manual_seed(0)
    return str(save_pretrained(VideoViT(**TINY), tmp_path_factory.mktemp("enc") / "encoder"))


def clips(cache):
    return SyntheticVideoDataModule(num_per_class=6, num_frames=8, size=32, img_size=32, batch_size=4, num_workers=0,
                                    cache_dir=str(cache))


def trainer(root):
    return L.Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                     num_sanity_val_steps=0, default_root_dir=str(root))


def fit_sae(data, root, layers=None):
    L.seed_everything(0)
    task = SAETask(TopKSAE(32, 128, k=4, dead_after_tokens=500), lr=1e-3, export_sae=False, density_report=False,
                   layers=layers)
    trainer(root).fit(task, data)
    return task


def test_online_and_shard_training_see_one_stream_and_end_equal(encoder_dir, tmp_path, monkeypatch):
    """The chunks an online fit encoded, written one shard per encoder batch and read in stored order with
    the same seed, train an SAE equal to the online one."""
    encoded = []
    encode = EncoderTokenDataModule.encode

    def recording(self, batch, first_item):
        chunk = encode(self, batch, first_item)
        encoded.append({name: value.clone() for name, value in chunk.items()})
        return chunk

    monkeypatch.setattr(EncoderTokenDataModule, "encode", recording)
    streamed = fit_sae(EncoderTokenDataModule(encoder_dir, clips(tmp_path / "cache"), batch_size=64,
                                              buffer_rows=96, seed=5), tmp_path / "a")
    rows = len(encoded[0]["features"])  # 4 clips x 64 tokens: one shard per encoder batch
    writer = FeatureShardWriter(tmp_path / "shards", ["clip", "t", "h", "w", "label"], shard_rows=rows)
    for chunk in encoded:
        writer.add(chunk["features"], chunk["meta"])
    writer.close()
    assert len(encoded) > 2 and encoded[0]["features"].shape == (4 * 64, 32)
    replayed = fit_sae(FeatureDataModule(str(tmp_path / "shards"), batch_size=64, buffer_rows=96, val_shards=0,
                                         seed=5, shuffle_shards=False), tmp_path / "b")
    assert streamed.global_step == replayed.global_step > 3
    for name, value in streamed.sae.state_dict().items():
        torch.testing.assert_close(replayed.sae.state_dict()[name], value, msg=name)


def test_several_layers_come_from_one_encoder_pass_and_train_one_sae_each(encoder_dir, tmp_path, monkeypatch):
    data = EncoderTokenDataModule(encoder_dir, clips(tmp_path / "cache"), layers=[0, 1, -1], batch_size=64)
    assert data.layer_names == ["embedding", "block1", "output"] and data.feature_width == 32
    data.setup("fit")
    calls = []
    forward_layers = VideoViT.forward_layers
    monkeypatch.setattr(VideoViT, "forward_layers", lambda self, x: calls.append(1) or forward_layers(self, x))
    batch = next(iter(data.data.train_dataloader()))
    chunk = data.encode(batch, first_item=10)
    assert len(calls) == 1 and chunk["features"].shape == (4 * 64, 3, 32)
    video = batch["video"] if isinstance(batch, dict) else batch[0]
    layers = forward_layers(data.encoder, video)
    for position, layer in enumerate([0, 1, 2]):
        torch.testing.assert_close(chunk["features"][:, position], layers[layer].reshape(-1, 32))
    torch.testing.assert_close(layers[-1], data.encoder.forward_features(video))
    meta = chunk["meta"]  # clip, t, h, w, label like `vtrep extract`
    assert meta[:64, 0].eq(10).all() and meta[64:128, 0].eq(11).all()
    assert meta[:64, 1:4].tolist()[:2] == [[0, 0, 0], [0, 0, 1]] and meta[:, 4].ge(0).all()

    task = SAETask(TopKSAE(32, 128, k=4), lr=1e-3, density_report=False, layers=data.layer_names)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=6, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=2,
                        num_sanity_val_steps=0, val_check_interval=3, default_root_dir=str(tmp_path))
    before = [sae.W_dec.detach().clone() for sae in task.saes]
    trainer.fit(task, data)
    assert len(task.saes) == 3 and len({id(sae) for sae in task.saes}) == 3
    assert all(not torch.equal(b, sae.W_dec) for b, sae in zip(before, task.saes))
    assert {"val/embedding/fvu", "val/block1/fvu", "val/output/fvu"} <= set(trainer.logged_metrics)
    for name in data.layer_names:  # one exported SAE per layer
        assert load_sae(tmp_path / "sae" / name).num_latents == 128


def test_bad_layers_and_batches_are_refused_with_the_reason(encoder_dir, tmp_path):
    with pytest.raises(ValueError, match="layer 3 is not a layer of VideoViT, which offers layers -3..2"):
        EncoderTokenDataModule(encoder_dir, clips(tmp_path), layers=[3])
    with pytest.raises(ValueError, match="name the same layer twice"):
        EncoderTokenDataModule(encoder_dir, clips(tmp_path), layers=[2, -1])
    with pytest.raises(ValueError, match=r"SAE batches are \(n, 2, d\) rows"):
        SAETask(TopKSAE(8, 16, k=2), layers=["a", "b"]).training_step(torch.randn(4, 8), 0)
    with pytest.raises(ValueError, match="distinct layer names"):
        SAETask(TopKSAE(8, 16, k=2), layers=["a", "a"])


def test_random_init_control_encodes_with_another_encoder(encoder_dir, tmp_path):
    trained = EncoderTokenDataModule(encoder_dir, clips(tmp_path))
    control = EncoderTokenDataModule(encoder_dir, clips(tmp_path), random_init=True, seed=1)
    assert not torch.equal(trained.encoder.blocks[0].mlp.fc1.weight, control.encoder.blocks[0].mlp.fc1.weight)
    assert control.feature_width == trained.feature_width


def test_shuffle_buffer_delivers_every_row_once_and_keeps_order_without_generator():
    rows = torch.arange(100)
    chunks = [{"features": rows[i:i + 30, None].float(), "meta": rows[i:i + 30, None]} for i in range(0, 100, 30)]
    for generator in (None, torch.Generator().manual_seed(0)):
        buffer = ShuffleBuffer(batch_size=16, buffer_rows=40, generator=generator)
        batches = [b for chunk in chunks for b in buffer.add(chunk)] + list(buffer.drain())
        seen = torch.cat([b["meta"][:, 0] for b in batches])
        assert sorted(seen.tolist()) == list(range(100)) and all(len(b["meta"]) == 16 for b in batches[:-1])
        assert torch.equal(seen, rows) == (generator is None)
        for batch in batches:
            assert torch.equal(batch["features"][:, 0].long(), batch["meta"][:, 0])


def test_ranks_take_only_the_batches_every_rank_has(monkeypatch):
    """Under DDP a rank yields, after each encoder batch, the number of batches all ranks agreed on."""
    class Source:
        seed, batch_size, buffer_rows = 0, 10, 0

        def chunks(self, split, epoch):
            for size in (25, 25, 25):
                yield {"features": torch.zeros(size, 2), "meta": torch.zeros(size, 1, dtype=torch.long)}

        def agree_min(self, count):  # another rank is always one batch short
            return max(count - 1, 0)

    monkeypatch.setattr(online_tokens, "rank_and_world", lambda: (0, 2))
    batches = list(online_tokens.TokenStream(Source(), "train"))
    assert len(batches) == 6 and all(len(b["features"]) == 10 for b in batches)  # 7 full ones here, 1 left out


def test_series_encoders_stream_patch_tokens_per_layer_and_step_tokens_at_their_output(tmp_path):
    from datamodules import SeriesClassificationDataModule
    from vtrep.backbones.dilated_conv import DilatedConvEncoder
    from vtrep.backbones.series_transformer import PatchTSTEncoder

    series = SeriesClassificationDataModule(generated_per_class=4, generated_length=128, batch_size=4)
    patch = save_pretrained(PatchTSTEncoder(context_length=128, patch_length=16, stride=16, d_model=16, depth=2,
                                            num_heads=2), tmp_path / "patchtst", extra={"revin": True})
    data = EncoderTokenDataModule(str(patch), series, layers=[0, -1])
    data.setup("fit")
    assert data.layer_names == ["embedding", "output"] and data.feature_width == 16
    batch = next(iter(series.train_dataloader()))
    chunk = data.encode(batch, first_item=0)
    channels = batch[0].shape[1]
    assert chunk["features"].shape == (4 * channels * 8, 2, 16)  # (series x channel x patch, layer, D)
    assert chunk["meta"][:8, 1:3].tolist() == [[0, p] for p in range(8)]  # channel 0, patches 0..7
    steps = save_pretrained(DilatedConvEncoder(input_channels=channels, output_dim=8, hidden_dim=8, depth=2),
                            tmp_path / "ts2vec", extra={"revin": False})
    with pytest.raises(ValueError, match="which offers only its output"):
        EncoderTokenDataModule(str(steps), series, layers=[0, -1])
    data = EncoderTokenDataModule(str(steps), series)
    data.setup("fit")
    chunk = data.encode(batch, first_item=0)
    assert chunk["features"].shape == (4 * 128, 8) and chunk["meta"][:3, 1:3].tolist() == [[-1, 0], [-1, 1], [-1, 2]]
