"""``vtrep benchmark video``: pretrain per seed, then k-fold probes of the encoder and of random init."""

from __future__ import annotations

import csv

import pytest
import yaml

from datamodules.video.generated import generate_moving_sprites
from vtrep.benchmark.video import benchmark_video

FIT = {
    "seed_everything": 0,
    "trainer": {"accelerator": "cpu", "devices": 1, "max_steps": 2, "limit_val_batches": 0,
                "num_sanity_val_steps": 0, "enable_model_summary": False},
    "model": {"class_path": "vtrep.tasks.VideoMAETask", "init_args": {
        "backbone": {"class_path": "vtrep.backbones.VideoViT",
                     "init_args": {"img_size": 32, "num_frames": 8, "patch_size": 8, "tubelet_size": 2,
                                   "embed_dim": 16, "depth": 1, "num_heads": 2}},
        "decoder": {"dim": 16, "depth": 1, "num_heads": 2}, "num_viz_clips": 0}},
    "data": {"class_path": "datamodules.VideoDataModule",
             "init_args": {"root": None, "num_frames": 8, "sampling_rate": 1, "img_size": 32, "batch_size": 4,
                           "num_workers": 0, "val_fraction": 0.2}},
}


@pytest.mark.slow  # one vtrep fit process and four 5-fold probes: ~1 min here
def test_video_suite_writes_pretrained_and_random_k_fold_accuracies(tmp_path):
    root = generate_moving_sprites(str(tmp_path / "clips"), num_per_class=5)
    config = tmp_path / "fit.yaml"
    config.write_text(yaml.safe_dump(FIT))
    results = benchmark_video(str(root), str(tmp_path / "out"), fit_config=str(config), seeds=[0],
                              protocols=["linear", "knn"], protocol_options={"knn": {"k": 3}}, progress=False)
    assert len(results) == 1
    rows = list(csv.DictReader((tmp_path / "out" / "results.csv").open()))
    assert set(rows[0]) == {"dataset", "seed", "linear_pretrained", "linear_random", "knn_pretrained", "knn_random"}
    assert all(0.0 <= float(rows[0][k]) <= 1.0 for k in rows[0] if k.endswith(("pretrained", "random")))
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "| linear |" in summary and "5-fold over all clips" in summary
    # the summary's command reruns this suite: its protocols and their options are in it
    assert """--protocols '[linear,knn]' --protocol_options '{"knn": {"k": 3}}'""" in summary
    again = benchmark_video(str(root), str(tmp_path / "out"), fit_config=str(config), seeds=[0],
                            protocols=["linear", "knn"], protocol_options={"knn": {"k": 3}}, progress=False)
    assert again == results  # resumed: read back, not refitted


def test_a_missing_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="root='.*nope' is not a folder of class folders"):
        benchmark_video(str(tmp_path / "nope"), str(tmp_path / "out"))


def test_options_for_a_protocol_not_run_are_refused(tmp_path):
    (tmp_path / "clips" / "a").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"protocol_options names \['attentive'\], which are not among"):
        benchmark_video(str(tmp_path / "clips"), str(tmp_path / "out"), protocols=["linear"],
                        protocol_options={"attentive": {"self_attention_blocks": 1}})
