"""Feature shards: writing, streaming with a shuffling buffer, the datamodule split, video token extraction."""

import pytest
import torch

from datamodules.features.shards import (
    FeatureDataModule,
    FeatureShards,
    FeatureShardWriter,
    read_index,
)


def write(root, rows=1000, width=4, shard_rows=128):
    writer = FeatureShardWriter(root, ["row"], shard_rows=shard_rows)
    features = torch.arange(rows * width, dtype=torch.float32).view(rows, width)
    for chunk in range(0, rows, 77):  # uneven appends across shard boundaries
        writer.add(features[chunk:chunk + 77], torch.arange(chunk, min(chunk + 77, rows))[:, None])
    writer.close()
    return features


def test_every_row_is_streamed_once_per_epoch_in_a_new_order(tmp_path):
    features = write(tmp_path)
    index = read_index(tmp_path)
    assert [s["rows"] for s in index["shards"]] == [128] * 7 + [104]
    data = FeatureShards(tmp_path, batch_size=50, buffer_rows=200, seed=3)
    epochs = []
    for _ in range(2):
        batches = list(data)
        rows = torch.cat([b["meta"][:, 0] for b in batches])
        assert sorted(rows.tolist()) == list(range(1000))
        for batch in batches:  # features travel with their metadata
            torch.testing.assert_close(batch["features"], features[batch["meta"][:, 0]])
        epochs.append(rows)
    assert not torch.equal(epochs[0], epochs[1])
    ordered = torch.cat([b["meta"][:, 0] for b in FeatureShards(tmp_path, batch_size=64, shuffle=False)])
    assert torch.equal(ordered, torch.arange(1000))
    assert len(data) == 20


def test_an_existing_or_unfinished_folder_is_protected(tmp_path):
    write(tmp_path / "done")
    with pytest.raises(FileExistsError, match="already holds features"):
        FeatureShardWriter(tmp_path / "done", ["row"])
    writer = FeatureShardWriter(tmp_path / "partial", ["row"], shard_rows=10)
    writer.add(torch.randn(25, 3), torch.zeros(25, 1, dtype=torch.long))  # two shards, no index yet
    with pytest.raises(FileNotFoundError, match="extraction did not finish"):
        FeatureShards(tmp_path / "partial")
    with pytest.raises(ValueError, match=r"expected features \(n, d\) and meta \(n, 1\)"):
        writer.add(torch.randn(5, 3), torch.zeros(5, 2, dtype=torch.long))


def test_datamodule_validates_on_the_last_shards(tmp_path):
    write(tmp_path)
    module = FeatureDataModule(str(tmp_path), batch_size=100, buffer_rows=100, val_shards=2)
    train = torch.cat([b["meta"][:, 0] for b in module.train_dataloader()])
    val = torch.cat([b["meta"][:, 0] for b in module.val_dataloader()])
    assert sorted(train.tolist()) == list(range(768)) and val.tolist() == list(range(768, 1000))
    with pytest.raises(ValueError, match="val_shards must be in"):
        FeatureDataModule(str(tmp_path), val_shards=8)


def test_video_tokens_are_written_with_their_grid_positions_and_labels(tmp_path):
    from vtrep.backbones import VideoViT
    from vtrep.eval.extract import VIDEO_META, extract_video_tokens

    torch.manual_seed(0)
    backbone = VideoViT(img_size=16, num_frames=4, patch_size=8, tubelet_size=2, embed_dim=12, depth=1, num_heads=2)
    clips, labels = torch.randn(5, 3, 4, 16, 16), torch.tensor([0, 1, 1, 0, 1])
    loader = [(clips[:3], labels[:3]), (clips[3:], labels[3:])]
    writer = FeatureShardWriter(tmp_path, VIDEO_META, shard_rows=16)
    assert extract_video_tokens(backbone, loader, writer) == 5
    writer.close()
    batches = list(FeatureShards(tmp_path, batch_size=8, shuffle=False))
    features = torch.cat([b["features"] for b in batches])
    meta = torch.cat([b["meta"] for b in batches])
    assert features.shape == (5 * 8, 12)  # grid (2, 2, 2)
    with torch.no_grad():
        torch.testing.assert_close(features, backbone.forward_features(clips).reshape(-1, 12))
    assert meta[9].tolist() == [1, 0, 0, 1, 1]  # clip 1, token 1 = (t 0, h 0, w 1), label 1
    assert meta[:, 0].tolist() == [c for c in range(5) for _ in range(8)]
    assert meta[:, 4].tolist() == [int(labels[c]) for c in range(5) for _ in range(8)]


def test_sae_task_trains_from_feature_shards(tmp_path):
    import lightning as L

    from vtrep.sae import TopKSAE
    from vtrep.tasks import SAETask

    write(tmp_path, rows=600, width=8, shard_rows=100)
    module = FeatureDataModule(str(tmp_path), batch_size=64, buffer_rows=128)
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path, accelerator="cpu")
    task = SAETask(TopKSAE(8, 16, k=2))
    trainer.fit(task, datamodule=module)
    assert bool(task.initialised) and "val/fvu" in trainer.callback_metrics


def test_sae_task_probe_check_compares_original_and_reconstructed_features(tmp_path):
    """Clips whose tokens carry their class along one direction: both probes see it when the SAE keeps it."""
    import lightning as L

    from vtrep.sae import TopKSAE
    from vtrep.tasks import SAETask

    torch.manual_seed(0)
    writer = FeatureShardWriter(tmp_path, ["clip", "label"], shard_rows=400)
    for clip in range(80):
        label = clip % 4 // 2  # even and odd clips both hold both classes
        tokens = torch.randn(10, 8) * 0.3
        tokens[:, label] += 2.0
        writer.add(tokens, torch.tensor([[clip, label]] * 10))
    writer.close()
    module = FeatureDataModule(str(tmp_path), batch_size=100, buffer_rows=100, val_shards=1)
    task = SAETask(TopKSAE(8, 32, k=2), lr=3e-3, probe_check=True)
    trainer = L.Trainer(max_epochs=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path, accelerator="cpu")
    trainer.fit(task, datamodule=module)
    logged = trainer.callback_metrics
    assert logged["val/probe_original"] == 1.0 and logged["val/probe_reconstructed"] >= 0.9


def test_ranks_read_disjoint_shards_and_yield_equally_many_full_batches(tmp_path):
    write(tmp_path, rows=1000, width=4, shard_rows=128)  # 8 shards, the last one of 104 rows
    for world, kept in ((2, 900), (3, 750)):  # 3 ranks: 3/3/2 shards, so each stops at the smallest share
        seen, counts = [], []
        for rank in range(world):
            data = FeatureShards(tmp_path, batch_size=50, buffer_rows=100, rank=rank, world_size=world)
            batches = list(data)
            assert all(len(b["features"]) == 50 for b in batches) and len(batches) == len(data)
            counts.append(len(batches))
            seen.append(torch.cat([b["features"][:, 0] for b in batches]))
        assert len(set(counts)) == 1  # DDP would hang on unequal counts
        ids = torch.cat(seen)
        assert len(ids.unique()) == len(ids) == kept  # disjoint
    with pytest.raises(ValueError, match="cannot feed"):
        list(FeatureShards(tmp_path, rank=0, world_size=9))


def test_metrics_synced_across_ranks_equal_metrics_on_all_inputs():
    from vtrep.sae import SAEMetrics

    torch.manual_seed(0)
    x, x_hat = torch.randn(40, 6) + 1.0, torch.randn(40, 6)
    codes = torch.relu(torch.randn(40, 9))
    whole = SAEMetrics(9)
    whole.update(x, x_hat, codes)
    halves = [SAEMetrics(9), SAEMetrics(9)]
    halves[0].update(x[:25], x_hat[:25], codes[:25])
    halves[1].update(x[25:], x_hat[25:], codes[25:])
    states = [h.state() for h in halves]
    for h in halves:
        h.sync(lambda local: states[0] + states[1])
        assert h.compute() == pytest.approx(whole.compute())
    alone = SAEMetrics(9)
    alone.update(x[:25], x_hat[:25], codes[:25])
    assert alone.compute()["fvu"] != pytest.approx(whole.compute()["fvu"])  # one rank's view differs


def test_datamodule_validates_on_a_second_folder_of_the_same_width(tmp_path):
    write(tmp_path / "train", rows=300, width=4, shard_rows=100)
    write(tmp_path / "val", rows=120, width=4, shard_rows=100)
    module = FeatureDataModule(str(tmp_path / "train"), batch_size=64, val_root=str(tmp_path / "val"))
    assert sum(len(b["features"]) for b in module.train_dataloader()) == 300  # nothing held out of training
    assert sum(len(b["features"]) for b in module.val_dataloader()) == 120
    write(tmp_path / "wide", rows=50, width=6)
    with pytest.raises(ValueError, match="width 6"):
        FeatureDataModule(str(tmp_path / "train"), val_root=str(tmp_path / "wide"))


def test_set_epoch_reproduces_that_epochs_order_and_sae_task_sets_it(tmp_path):
    import lightning as L

    from vtrep.sae import TopKSAE
    from vtrep.tasks import SAETask

    write(tmp_path, rows=500, width=4, shard_rows=100)
    ran = FeatureShards(tmp_path, batch_size=50, buffer_rows=100)
    orders = [torch.cat([b["meta"][:, 0] for b in ran]) for _ in range(3)]  # epochs 0, 1, 2 in one run
    resumed = FeatureShards(tmp_path, batch_size=50, buffer_rows=100)
    resumed.set_epoch(2)
    assert torch.equal(torch.cat([b["meta"][:, 0] for b in resumed]), orders[2])
    assert not torch.equal(orders[1], orders[2])

    class Rows(L.Callback):
        def __init__(self):
            self.rows = {}

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self.rows.setdefault(trainer.current_epoch, []).extend(batch["meta"][:, 0].tolist())

    def fit(epochs, root, ckpt=None):
        rows = Rows()
        trainer = L.Trainer(max_epochs=epochs, logger=False, enable_progress_bar=False, enable_model_summary=False,
                            default_root_dir=root, accelerator="cpu", callbacks=[rows], num_sanity_val_steps=0)
        trainer.fit(SAETask(TopKSAE(4, 8, k=2), export_sae=False),
                    datamodule=FeatureDataModule(str(tmp_path), batch_size=64, buffer_rows=128), ckpt_path=ckpt)
        return rows.rows

    whole = fit(2, tmp_path / "whole")
    fit(1, tmp_path / "first")
    ckpt = next((tmp_path / "first").rglob("*.ckpt"))
    resumed = fit(2, tmp_path / "resumed", str(ckpt))
    assert resumed[1] == whole[1]  # the resumed epoch shuffles as epoch 1, not as a first pass
