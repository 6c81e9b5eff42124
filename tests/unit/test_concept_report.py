"""Concept reports of SAE latents (``vtrep.reports.concepts`` and ``tools/sae_report.py``)."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from datamodules.features.shards import FeatureShards, FeatureShardWriter
from vtrep.reports.concepts import (
    LatentAccumulator,
    Layout,
    Span,
    gather_activations,
    item_span,
    scan_features,
    select_latents,
    steps_activation,
)

ROOT = Path(__file__).resolve().parents[2]
VIDEO = ["clip", "t", "h", "w", "label"]


def load_tool():
    spec = importlib.util.spec_from_file_location("sae_report", ROOT / "tools/sae_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def video_meta(clips: int, t: int, h: int = 2, w: int = 2) -> torch.Tensor:
    """Every token of ``clips`` clips in extraction order, label = 10 × clip: ``(clips·t·h·w, 5)``."""
    cells = torch.stack(torch.meshgrid(*(torch.arange(s) for s in (clips, t, h, w)), indexing="ij"), -1).reshape(-1, 4)
    return torch.cat([cells, 10 * cells[:, :1]], dim=1)


def feed(acc: LatentAccumulator, codes: torch.Tensor, meta: torch.Tensor) -> LatentAccumulator:
    rows, latents = (codes > 0).nonzero(as_tuple=True)
    acc.update(rows, latents, codes[rows, latents], meta)
    return acc


# -- statistics on hand-made codes ----------------------------------------------------------------------
def hand_made() -> tuple[LatentAccumulator, Span]:
    meta = video_meta(clips=3, t=6)  # 3 clips, 6 temporal positions of 2 × 2 tokens, tubelet 2 (12 frames)
    clip, t, h, w = meta[:, 0], meta[:, 1], meta[:, 2], meta[:, 3]
    codes = torch.zeros(len(meta), 4)
    # latent 1: clip 1 only, one token at t = 2 and 3, all four tokens at t = 4
    on = (clip == 1) & ((((t == 2) | (t == 3)) & (h == 0) & (w == 0)) | (t == 4))
    codes[on, 1] = torch.arange(1.0, int(on.sum()) + 1)
    # latent 0: clip 2 at t = 0, 1 and again at t = 4 (two runs)
    codes[(clip == 2) & ((t <= 1) | (t == 4)) & (h == 1) & (w == 1), 0] = 0.5
    # latents 2 and 3: clip 0, the last position then the first: consecutive keys, separate runs
    codes[(clip == 0) & (t == 5) & (h == 0) & (w == 0), 2] = 1.0
    codes[(clip == 0) & (t == 0) & (h == 0) & (w == 0), 3] = 1.0
    acc = feed(LatentAccumulator(4, top_items=2, layout=Layout.from_names(VIDEO)), codes, meta)
    return acc, item_span(acc.layout, num_positions=6, length=12)


def test_a_latent_on_at_t2_to_4_of_clip_1_has_the_known_statistics():
    acc, span = hand_made()
    assert span == Span(2, 2, 0, "frames")
    s = acc.stats(1, span)
    assert s.where == pytest.approx([0, 0, 1 / 3, 1 / 3, 1 / 3, 0])
    assert s.run_hist == [0, 0, 1, 0, 0, 0]
    assert (s.mean_run_tokens, s.max_run_tokens) == (3.0, 3)
    assert (s.mean_run_steps, s.max_run_steps) == (6.0, 6.0)  # 3 tokens × tubelet 2
    assert s.items_on == 1 and s.item_fraction == pytest.approx(1 / 3)
    assert s.token_rate == pytest.approx(6 / 72)
    assert s.mean_on == pytest.approx(3.5) and s.max_on == 6.0
    assert s.spread == pytest.approx((1 / 4 + 1 / 4 + 1) / 3)
    assert s.top_items == [(1, 10, 6.0)]


def test_runs_split_at_gaps_and_never_join_across_latents():
    acc, span = hand_made()
    two_runs = acc.stats(0, span)
    assert two_runs.run_hist[:2] == [1, 1] and two_runs.mean_run_tokens == 1.5 and two_runs.max_run_tokens == 2
    assert two_runs.mean_run_steps == 3.0 and two_runs.spread == pytest.approx(0.25)
    for latent, position in ((2, 5), (3, 0)):
        s = acc.stats(latent, span)
        assert s.run_hist[0] == 1 and s.max_run_tokens == 1 and s.where[position] == 1.0


def test_series_spans_and_per_step_activation():
    layout = Layout.from_names(["series", "channel", "patch", "label"])
    span = item_span(layout, num_positions=15, length=130, encoder_config={"patch_length": 16, "stride": 8})
    assert span == Span(16, 8, 2, "steps")  # left trim: the last patch ends at the last step
    assert span.steps(3) == 32.0 and span.window(14) == (114, 130)
    assert item_span(layout, 20, 20, {"hidden_dim": 8}) == Span(1, 1, 0, "steps")  # step encoder
    per_step = steps_activation(torch.tensor([0.0, 2.0, 1.0]), Span(4, 2, 0, "steps"), 8)
    assert per_step.tolist() == [0, 0, 2, 2, 2, 2, 1, 1]


def test_selection_skips_dense_and_one_item_latents():
    meta = video_meta(clips=4, t=2)
    codes = torch.zeros(len(meta), 3)
    codes[:, 0] = 1.0  # dense: every token
    codes[meta[:, 0] < 2, 1] = 5.0 * (meta[meta[:, 0] < 2, 2] == 0)  # 2 items, 1/8 of the tokens
    codes[(meta[:, 0] == 3) & (meta[:, 1] == 0) & (meta[:, 2] == 0) & (meta[:, 3] == 0), 2] = 9.0  # one item
    acc = feed(LatentAccumulator(3, 2, Layout.from_names(VIDEO)), codes, meta)
    chosen, note = select_latents(acc, 1, max_token_rate=0.3)
    assert chosen == [1] and "mean activation" in note
    chosen, note = select_latents(acc, 3, max_token_rate=0.3)
    assert chosen == [1, 2, 0] and "only 1 qualified" in note


def test_items_out_of_order_are_refused():
    acc = feed(LatentAccumulator(2, 1, Layout.from_names(VIDEO)), torch.ones(8, 2), video_meta(1, 2))
    with pytest.raises(ValueError, match="not contiguous"):
        feed(acc, torch.ones(8, 2), video_meta(1, 2))


# -- streaming equals brute force ------------------------------------------------------------------------
def test_streamed_top_items_and_counts_equal_brute_force_over_shards_and_batches(tmp_path):
    from vtrep.sae import TopKSAE

    torch.manual_seed(0)
    meta = video_meta(clips=23, t=3)  # 12 tokens per clip; shards of 37 rows and batches of 13 split clips
    features = torch.randn(len(meta), 6)
    writer = FeatureShardWriter(tmp_path / "features", VIDEO, shard_rows=37)
    writer.add(features, meta)
    writer.close()
    sae = TopKSAE(6, 10, k=3).eval()
    acc = scan_features(sae, tmp_path / "features", top_items=3, batch_size=13)
    assert len(list(FeatureShards(tmp_path / "features", batch_size=13, shuffle=False))) > 3

    with torch.no_grad():
        codes = sae.encode(features)
    per_item = torch.zeros(23, 10).scatter_reduce(0, meta[:, :1].expand(-1, 10), codes, "amax")
    for latent in range(10):
        fired = (per_item[:, latent] > 0).nonzero().flatten()
        values, order = per_item[fired, latent].sort(descending=True)
        n = min(3, len(fired))
        assert acc.top_item[latent, :n].tolist() == fired[order[:n]].tolist()
        assert acc.top_label[latent, :n].tolist() == (10 * fired[order[:n]]).tolist()
        torch.testing.assert_close(acc.top_value[latent, :n], values[:n])
        assert (acc.top_item[latent, n:] == -1).all()
    assert acc.fires.tolist() == (codes > 0).sum(0).tolist()
    assert acc.items_on.tolist() == (per_item > 0).sum(0).tolist()
    whole = feed(LatentAccumulator(10, 3, acc.layout), codes, meta)  # one chunk: same statistics
    for name in ("where", "run_hist", "spread_sum", "act_sum", "top_item"):
        torch.testing.assert_close(getattr(acc, name), getattr(whole, name))

    gathered = gather_activations(sae, tmp_path / "features", [4, 7], [2, 19], batch_size=5)
    assert sorted(gathered) == [2, 19]
    for item in (2, 19):
        expected = codes[meta[:, 0] == item][:, [4, 7]].reshape(3, 2, 2, 2)
        torch.testing.assert_close(gathered[item].grid(1), expected[..., 1])


# -- end to end ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def video_folder(tmp_path_factory):
    from vtrep.backbones import VideoViT
    from vtrep.cli import main
    from vtrep.io.pretrained import save_pretrained
    from vtrep.sae import TopKSAE
    from vtrep.sae.io import save_sae

    tmp = tmp_path_factory.mktemp("video")
    torch.manual_seed(0)
    backbone = VideoViT(img_size=16, num_frames=4, patch_size=8, tubelet_size=2, embed_dim=12, depth=1, num_heads=2)
    save_pretrained(backbone, tmp / "encoder")
    main(["extract", "--encoder", str(tmp / "encoder"), "--output", str(tmp / "features"), "--split", "val",
          "--data.class_path", "datamodules.SyntheticVideoDataModule", "--data.init_args.cache_dir",
          str(tmp / "cache"), "--data.init_args.num_per_class", "5", "--data.init_args.num_frames", "4",
          "--data.init_args.size", "16", "--data.init_args.img_size", "16", "--data.init_args.batch_size", "3"])
    save_sae(TopKSAE(12, 16, k=3), tmp / "sae")
    return tmp


@pytest.fixture(scope="module")
def series_folder(tmp_path_factory):
    from vtrep.backbones.series_transformer import PatchTSTEncoder
    from vtrep.cli import main
    from vtrep.io.pretrained import save_pretrained
    from vtrep.sae import TopKSAE
    from vtrep.sae.io import save_sae

    tmp = tmp_path_factory.mktemp("series")
    torch.manual_seed(0)
    encoder = PatchTSTEncoder(context_length=128, patch_length=16, stride=8, d_model=8, depth=1, num_heads=2,
                              dropout=0.0)
    save_pretrained(encoder, tmp / "encoder", extra={"revin": True})
    main(["extract", "--encoder", str(tmp / "encoder"), "--output", str(tmp / "features"), "--split", "test",
          "--shard_rows", "40", "--data.class_path", "datamodules.SeriesClassificationDataModule",
          "--data.init_args.generated_per_class", "4"])
    save_sae(TopKSAE(8, 16, k=2), tmp / "sae")
    return tmp


def check_report(out: Path, kind: str) -> list[int]:
    """The PNGs open, are non-constant and are all linked; every latent has a section. Returns the latents."""
    from PIL import Image

    page = (out / "report.html").read_text()
    linked = set(re.findall(r"<img src='([^']+)'", page))
    pngs = {p.name for p in out.glob("*.png")}
    assert linked == pngs and "summary.png" in pngs
    latents = [int(j) for j in re.findall(r"<section id='latent-(\d+)'>", page)]
    assert latents
    for latent in latents:
        assert f"<h2>Latent {latent}</h2>" in page
        assert {f"latent_{latent:05d}_{kind}.png", f"latent_{latent:05d}_time.png"} <= pngs
    for name in pngs:
        image = np.asarray(Image.open(out / name).convert("RGB"))
        assert image.shape[0] > 200 and image.shape[1] > 400 and image.std() > 10, name
    return latents


def test_video_report_from_the_command_line_and_an_existing_report_is_refused(video_folder):
    from jsonargparse import CLI
    from PIL import Image

    from vtrep.reports.concept_figures import DPI, frame_grid_inches

    tool, out = load_tool(), video_folder / "report"
    args = ["--sae", str(video_folder / "sae"), "--features", str(video_folder / "features"), "--output", str(out),
            "--top_latents", "2", "--top_items", "2", "--max_frames", "3"]
    CLI(tool.sae_report, args=args, as_positional=False)
    latents = check_report(out, "frames")
    assert len(latents) == 2
    numbers = json.loads((out / "concepts.json").read_text())
    page = (out / "report.html").read_text()
    for s in numbers["latents"]:  # each top clip is named by its <class>/<file>, in the page too
        for item, _, _ in s["top_items"]:
            name = numbers["item_names"][str(item)]
            assert name.endswith(".mp4") and len(Path(name).parts) == 2 and name in page
    for s in numbers["latents"]:
        latent, rows = s["latent"], len(s["top_items"])
        width, height = frame_grid_inches(rows, 3)  # 4-frame clips: 3 evenly spaced frames per row
        assert Image.open(out / f"latent_{latent:05d}_frames.png").size == (round(width * DPI), round(height * DPI))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(FileExistsError, match="report.html"):
        CLI(tool.sae_report, args=args, as_positional=False)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_series_report_with_named_latents(series_folder):
    tool, out = load_tool(), series_folder / "report"
    tool.sae_report(str(series_folder / "sae"), str(series_folder / "features"), str(out), latents=[5, 2, 5],
                    top_items=3)
    numbers = json.loads((out / "concepts.json").read_text())
    assert [s["latent"] for s in numbers["latents"]] == [5, 2]  # the named order, duplicates dropped
    assert numbers["span"] == {"size": 16, "stride": 8, "offset": 0, "unit": "steps"}
    page = (out / "report.html").read_text()
    for latent in (5, 2):
        assert f"<h2>Latent {latent}</h2>" in page
    assert check_report(out, "series") == [5, 2]


def test_an_unknown_latent_and_a_wrong_feature_width_are_named(series_folder, tmp_path):
    from vtrep.sae import TopKSAE
    from vtrep.sae.io import save_sae

    tool, features = load_tool(), str(series_folder / "features")
    with pytest.raises(ValueError, match="latent 16 .*16 latents"):
        tool.sae_report(str(series_folder / "sae"), features, str(tmp_path / "a"), latents=[3, 16])
    save_sae(TopKSAE(10, 16, k=2), tmp_path / "wide_sae")
    with pytest.raises(ValueError, match="width 8 but the SAE expects d_in=10"):
        tool.sae_report(str(tmp_path / "wide_sae"), features, str(tmp_path / "b"))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
