"""``vtrep extract``: token features with metadata and ``source.json`` from saved encoders, video and series."""

from __future__ import annotations

import json

import pytest
import torch

from datamodules.features.shards import FeatureShards, read_index
from vtrep.cli import main
from vtrep.eval.feature_source import SourceItems, read_source
from vtrep.io.pretrained import save_pretrained


def read_all(root):
    batches = list(FeatureShards(root, batch_size=1 << 20, shuffle=False))
    return torch.cat([b["features"] for b in batches]), torch.cat([b["meta"] for b in batches])


@pytest.fixture
def video_encoder(tmp_path):
    from vtrep.backbones import VideoViT

    torch.manual_seed(0)
    backbone = VideoViT(img_size=16, num_frames=4, patch_size=8, tubelet_size=2, embed_dim=12, depth=1, num_heads=2)
    return backbone.eval(), save_pretrained(backbone, tmp_path / "encoder")


def video_args(tmp_path, encoder_dir, output, split="val", features="tokens"):
    return ["extract", "--encoder", str(encoder_dir), "--output", str(output), "--split", split, "--features", features,
            "--data.class_path", "datamodules.SyntheticVideoDataModule",
            "--data.init_args.cache_dir", str(tmp_path / "cache"), "--data.init_args.num_per_class", "5",
            "--data.init_args.num_frames", "4", "--data.init_args.size", "16", "--data.init_args.img_size", "16",
            "--data.init_args.batch_size", "3"]


def test_video_extraction_writes_every_token_with_its_clip_and_traces_back_to_the_clips(tmp_path, video_encoder):
    backbone, encoder_dir = video_encoder
    out = tmp_path / "features"
    main(video_args(tmp_path, encoder_dir, out))
    features, meta = read_all(out)
    source = read_source(out)
    items = SourceItems(out)
    assert source["kind"] == "video" and source["split"] == "val" and source["items"] == len(items) > 0
    assert read_index(out)["meta"] == ["clip", "t", "h", "w", "label"]
    assert features.shape == (len(items) * 8, 12)  # grid (2, 2, 2)
    assert meta[:, 0].tolist() == [c for c in range(len(items)) for _ in range(8)]
    for clip in (0, len(items) - 1):
        video, label = items[clip]
        with torch.no_grad():
            expected = backbone.forward_features(video[None]).reshape(-1, 12)
        torch.testing.assert_close(features[meta[:, 0] == clip], expected)
        assert (meta[meta[:, 0] == clip, 4] == int(label)).all()


def test_extraction_refuses_an_existing_feature_folder_and_keeps_it(tmp_path, video_encoder, capsys, monkeypatch):
    monkeypatch.delenv("VTREP_DEBUG", raising=False)
    _, encoder_dir = video_encoder
    out = tmp_path / "features"
    main(video_args(tmp_path, encoder_dir, out))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    with pytest.raises(SystemExit) as refused:
        main(video_args(tmp_path, encoder_dir, out))
    assert refused.value.code == 2
    assert f"vtrep extract: error: {out} already holds features" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_series_extraction_writes_channel_patch_tokens_with_labels(tmp_path):
    from datamodules import SeriesClassificationDataModule
    from vtrep.backbones.series_transformer import PatchTSTEncoder
    from vtrep.eval.extract import series_tokens

    torch.manual_seed(0)
    encoder = PatchTSTEncoder(context_length=128, patch_length=16, stride=16, d_model=8, depth=1, num_heads=2,
                              dropout=0.0).eval()
    save_pretrained(encoder, tmp_path / "encoder", extra={"revin": True})
    out = tmp_path / "features"
    main(["extract", "--encoder", str(tmp_path / "encoder"), "--output", str(out), "--split", "test",
          "--data.class_path", "datamodules.SeriesClassificationDataModule",
          "--data.init_args.generated_per_class", "4"])
    features, meta = read_all(out)
    data = SeriesClassificationDataModule(generated_per_class=4)
    data.setup()
    x, y = data.test_set.tensors
    assert read_index(out)["meta"] == ["series", "channel", "patch", "label"]
    assert features.shape == (len(x) * 1 * 8, 8)  # 1 channel, 128 / 16 patches
    assert meta[:8, 2].tolist() == list(range(8)) and (meta[:, 1] == 0).all()
    assert meta[::8, 3].tolist() == y.tolist()
    with torch.no_grad():
        tokens, _ = series_tokens(encoder, x[2:3].float(), revin=True)
    torch.testing.assert_close(features[meta[:, 0] == 2], tokens[0])
    assert read_source(out)["revin"] is True and len(SourceItems(out)) == len(x)


def test_step_encoder_tokens_are_time_steps_and_forecasting_windows_have_no_label(tmp_path):
    from datamodules.features.shards import FeatureShardWriter
    from vtrep.backbones.dilated_conv import DilatedConvEncoder
    from vtrep.eval.extract import SERIES_META, extract_series_tokens

    torch.manual_seed(0)
    encoder = DilatedConvEncoder(input_channels=2, hidden_dim=8, output_dim=6, depth=1)
    context, target = torch.randn(3, 2, 20), torch.randn(3, 2, 5)  # a forecasting batch: float target
    writer = FeatureShardWriter(tmp_path, SERIES_META)
    assert extract_series_tokens(encoder, [(context, target)], writer) == 3
    writer.close()
    features, meta = read_all(tmp_path)
    assert features.shape == (3 * 20, 6)
    assert (meta[:, 1] == -1).all() and (meta[:, 3] == -1).all()
    assert meta[:20, 2].tolist() == list(range(20))
    with torch.no_grad():
        torch.testing.assert_close(features[20:40], encoder.eval()(context[1:2])[0])


def test_a_checkpoint_needs_its_config_and_a_missing_encoder_is_named(tmp_path):
    from vtrep.eval.encoders import load_encoder

    ckpt = tmp_path / "last.ckpt"
    ckpt.write_bytes(b"not used")
    with pytest.raises(ValueError, match="fit_config"):
        load_encoder(str(ckpt))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_encoder(str(tmp_path / "nowhere"))


def test_a_feature_folder_without_source_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="source.json"):
        read_source(tmp_path)
    (tmp_path / "source.json").write_text(json.dumps({"kind": "video"}))
    assert read_source(tmp_path)["kind"] == "video"


def test_extracted_default_data_feeds_the_sae_datamodule_and_the_linear_probe(tmp_path, video_encoder):
    import lightning as L

    from datamodules.features.shards import FeatureDataModule, load_features
    from vtrep.probes.linear_probe import fit_linear_probe
    from vtrep.sae import TopKSAE
    from vtrep.tasks import SAETask

    backbone, encoder_dir = video_encoder
    for split in ("train", "val"):
        for kind in ("tokens", "pooled"):
            main(video_args(tmp_path, encoder_dir, tmp_path / f"{kind}_{split}", split, kind))
    data = FeatureDataModule(str(tmp_path / "tokens_train"), batch_size=64, val_root=str(tmp_path / "tokens_val"))
    trainer = L.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path, accelerator="cpu")
    trainer.fit(SAETask(TopKSAE(12, 48, k=4), lr=1e-3), datamodule=data)
    assert 0 < float(trainer.callback_metrics["val/fvu"]) < 1
    (train_x, train_meta), (val_x, val_meta) = (load_features(tmp_path / f"pooled_{s}") for s in ("train", "val"))
    items = SourceItems(tmp_path / "pooled_val")
    assert read_index(tmp_path / "pooled_val")["meta"] == ["item", "label"] and len(val_x) == len(items)
    with torch.no_grad():
        torch.testing.assert_close(val_x[1], backbone(items[1][0][None])[0])
    assert val_meta[:, 1].tolist() == [int(items[i][1]) for i in range(len(items))]
    result = fit_linear_probe(train_x, train_meta[:, 1], val_x, val_meta[:, 1], 4, epochs=5)
    assert (result.num_train, result.num_eval) == (len(train_x), len(val_x))


def test_a_failed_extraction_leaves_no_feature_folder_behind(tmp_path, video_encoder, monkeypatch):
    import vtrep.eval.extract_cli as extract_cli

    _, encoder_dir = video_encoder
    real = extract_cli.extract_video_tokens

    def fails_after_writing(module, loader, writer, device):
        real(module, loader, writer, device)
        writer._flush(writer.pending_rows)  # a shard is on disk when the failure comes
        raise RuntimeError("decoder died")

    monkeypatch.setattr(extract_cli, "extract_video_tokens", fails_after_writing)
    out = tmp_path / "features"
    with pytest.raises(RuntimeError, match="decoder died"):
        extract_cli.extract_cli(video_args(tmp_path, encoder_dir, out)[1:])
    assert not out.exists()
    assert not list(tmp_path.glob(".features.partial-*"))
    monkeypatch.setattr(extract_cli, "extract_video_tokens", real)
    main(video_args(tmp_path, encoder_dir, out))  # the same command then succeeds
    assert read_index(out)["shards"]
