"""``vtrep extract`` over a folder with a corrupt mp4: skipped and reported as in fit, clip numbers kept, no
output folder when the extraction cannot finish."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from video_faults import clip, write_truncated

from datamodules.faults.tracker import SkippedVideoWarning, TooManySkippedVideos
from datamodules.features.shards import load_features
from datamodules.video.decoding import write_video
from vtrep.cli import main
from vtrep.eval.feature_source import SourceItems, read_source
from vtrep.io.pretrained import save_pretrained


@pytest.fixture(autouse=True)
def _clean_argv(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["vtrep"])
    monkeypatch.setenv("VTREP_DEBUG", "1")  # these tests read the raised error; its one-line form: test_cli_errors


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    from vtrep.backbones import VideoViT

    torch.manual_seed(0)
    backbone = VideoViT(img_size=16, num_frames=4, patch_size=8, tubelet_size=2, embed_dim=12, depth=1, num_heads=2)
    return backbone.eval(), save_pretrained(backbone, tmp_path_factory.mktemp("encoder") / "encoder")


def clips_folder(root, bad: set[str]):
    """``root/<class>/*.mp4``: five 12-frame clips, those named in ``bad`` written truncated (undecodable)."""
    for number, name in enumerate(["a/0.mp4", "a/1.mp4", "a/2.mp4", "b/0.mp4", "b/1.mp4"]):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        write_truncated(root / name) if name in bad else write_video(str(root / name), clip(number))
    return root


def extract_args(encoder_dir, root, output, *extra: str) -> list[str]:
    return ["extract", "--encoder", str(encoder_dir), "--output", str(output), "--data.class_path",
            "datamodules.VideoDataModule", "--data.init_args.root", str(root), "--data.init_args.val_fraction", "0",
            "--data.init_args.num_frames", "4", "--data.init_args.sampling_rate", "2", "--data.init_args.img_size",
            "16", "--data.init_args.batch_size", "2", "--data.init_args.num_workers", "0", *extra]


def test_a_corrupt_video_is_skipped_reported_and_its_clip_number_left_unused(tmp_path, encoder):
    backbone, encoder_dir = encoder
    root = clips_folder(tmp_path / "clips", bad={"a/1.mp4"})
    out = tmp_path / "features"
    with pytest.warns(SkippedVideoWarning, match="a/1.mp4"):
        main(extract_args(encoder_dir, root, out, "--data.init_args.max_skip_fraction", "0.5"))
    source = read_source(out)
    assert source["items"] == 5
    assert [(s["item"], s["kind"]) for s in source["skipped"]] == [(1, "undecodable")]
    assert source["skipped"][0]["path"].endswith("a/1.mp4")
    report = json.loads((out / "skipped_videos.json").read_text())["passes"]
    assert [f["path"] for f in report[0]["files"]] == [source["skipped"][0]["path"]]
    assert "a/1.mp4" in (out / "skipped_videos.txt").read_text()
    features, meta = load_features(out)
    assert meta[:, 0].unique().tolist() == [0, 2, 3, 4]  # every other clip keeps its number
    items = SourceItems(out)
    assert set(items.skipped) == {1}
    with pytest.raises(ValueError, match="item 1 .*a/1.mp4.* was skipped at extraction"):
        items[1]
    for number in (0, 2, 4):  # features match the clip their number names
        with torch.no_grad():
            expected = backbone.forward_features(items[number][0][None]).reshape(-1, 12)
        torch.testing.assert_close(features[meta[:, 0] == number], expected)


def test_pooled_rows_skip_the_same_item(tmp_path, encoder):
    _, encoder_dir = encoder
    root = clips_folder(tmp_path / "clips", bad={"b/0.mp4"})
    with pytest.warns(SkippedVideoWarning):
        main(extract_args(encoder_dir, root, tmp_path / "pooled", "--features", "pooled",
                          "--data.init_args.max_skip_fraction", "0.5"))
    _, meta = load_features(tmp_path / "pooled")
    assert meta.tolist() == [[0, 0], [1, 0], [2, 0], [4, 1]]  # item, label: item 3 (b/0.mp4) has no row


def test_more_bad_videos_than_max_skip_fraction_stop_the_extraction_leaving_no_folder(tmp_path, encoder):
    _, encoder_dir = encoder
    root = clips_folder(tmp_path / "clips", bad={"a/1.mp4"})
    out = tmp_path / "features"
    with pytest.warns(SkippedVideoWarning), pytest.raises(TooManySkippedVideos, match="train extraction: .*a/1.mp4"):
        main(extract_args(encoder_dir, root, out))  # the default limit, 0.1, as in fit
    assert not out.exists() and not list(tmp_path.glob(".features.partial-*"))


def test_when_every_video_is_bad_the_error_says_so_and_no_folder_is_left(tmp_path, encoder):
    _, encoder_dir = encoder
    bad = {"a/0.mp4", "a/1.mp4", "a/2.mp4", "b/0.mp4", "b/1.mp4"}
    root = clips_folder(tmp_path / "clips", bad=bad)
    out = tmp_path / "features"
    out.mkdir()  # an empty folder made for the output stays as it was, empty
    with pytest.warns(SkippedVideoWarning), pytest.raises(RuntimeError, match="no video of the train split"):
        main(extract_args(encoder_dir, root, out, "--data.init_args.max_skip_fraction", "1"))
    assert list(out.iterdir()) == [] and not list(tmp_path.glob(".features.partial-*"))


def test_features_with_a_skipped_clip_feed_an_sae_fit_and_the_concept_report(tmp_path, encoder):
    import importlib.util
    from pathlib import Path

    from jsonargparse import CLI

    _, encoder_dir = encoder
    root = clips_folder(tmp_path / "clips", bad={"a/2.mp4"})
    with pytest.warns(SkippedVideoWarning):
        main(extract_args(encoder_dir, root, tmp_path / "features", "--data.init_args.max_skip_fraction", "0.5"))
    runs = tmp_path / "runs"
    main(["fit", "--config", str(Path(__file__).parents[2] / "configs/experiment/sae_fight_surv.yaml"),
          "--data.init_args.root", str(tmp_path / "features"), "--data.init_args.val_root", "null",
          "--data.init_args.val_shards", "0", "--data.init_args.batch_size", "16", "--model.init_args.probe_check",
          "false", "--model.init_args.sae.init_args.num_latents", "24", "--model.init_args.sae.init_args.k", "4",
          "--trainer.max_steps", "2", "--trainer.limit_val_batches", "0", "--trainer.enable_progress_bar", "false",
          "--trainer.default_root_dir", str(runs), "--trainer.logger.init_args.save_dir", str(runs)])
    (sae,) = runs.rglob("sae/config.json")  # d_in came from the features: the piece has none
    spec = importlib.util.spec_from_file_location("sae_report", Path(__file__).parents[2] / "tools/sae_report.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    CLI(tool.sae_report, as_positional=False, args=["--sae", str(sae.parent), "--features", str(tmp_path / "features"),
                                                     "--output", str(tmp_path / "report"), "--top_latents", "1",
                                                     "--top_items", "2", "--max_frames", "2"])
    page = (tmp_path / "report" / "report.html").read_text()
    assert "1 unreadable videos skipped at extraction" in page
    shown = json.loads((tmp_path / "report" / "concepts.json").read_text())["item_names"]
    assert "a/2.mp4" not in shown.values() and shown
