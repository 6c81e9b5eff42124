"""Multi-view testing: where the views are, 1 × 1 is the single-view protocol, the score is the mean softmax."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from datamodules.video.dataset import VideoClipDataset, VideoViewsDataset
from datamodules.video.datamodule import VideoDataModule
from datamodules.video.decoding import write_video
from datamodules.video.sampling import clip_indices, view_starts
from datamodules.video.transforms import ClipTransform, centre_square_box, view_crop_boxes
from vtrep.eval.multiview import ViewCounts, score_views, view_probabilities
from vtrep.eval.video_probe import cross_validate

FRAMES, HEIGHT, WIDTH = 24, 16, 48  # frame t holds red 10 t; column x holds green 5 x


def _coded_frames() -> np.ndarray:
    frames = np.zeros((FRAMES, HEIGHT, WIDTH, 3), dtype=np.uint8)
    frames[..., 0] = (10 * np.arange(FRAMES))[:, None, None]
    frames[..., 1] = (5 * np.arange(WIDTH))[None, None, :]
    return frames


@pytest.fixture(scope="module")
def coded_root(tmp_path_factory) -> Path:
    """Two classes of two identical coded videos each (near-lossless yuv444p)."""
    root = tmp_path_factory.mktemp("coded")
    for label in ("a", "b"):
        (root / label).mkdir()
        for i in range(2):
            write_video(str(root / label / f"v{i}.mp4"), _coded_frames(), pix_fmt="yuv444p", crf=0)
    return root


def test_temporal_starts_are_evenly_spaced_and_one_clip_is_the_centre_clip():
    # window = 4 frames x rate 2 = 8; starts from 0 to 100 - 8 = 92
    assert view_starts(100, 4, 2, 5) == [0, 23, 46, 69, 92]
    assert view_starts(100, 4, 2, 2) == [0, 92]
    for total in (5, 8, 9, 33, 100):
        assert view_starts(total, 4, 2, 1) == [clip_indices(total, 4, 2, "center")[0]]


def test_a_short_video_repeats_starts_rather_than_failing():
    assert view_starts(10, 4, 2, 3) == [0, 1, 2]  # two starts beyond the first fit, three asked
    assert view_starts(8, 4, 2, 3) == [0, 0, 0]  # exactly one clip long
    assert view_starts(5, 4, 2, 3) == [0, 0, 0]  # shorter than a clip: the padded clip, thrice


def test_crops_are_evenly_spaced_along_the_long_side():
    assert view_crop_boxes(16, 48, 3) == [(0, 0, 16, 16), (0, 16, 16, 16), (0, 32, 16, 16)]
    assert view_crop_boxes(48, 16, 3) == [(0, 0, 16, 16), (16, 0, 16, 16), (32, 0, 16, 16)]
    assert view_crop_boxes(16, 47, 2) == [(0, 0, 16, 16), (0, 31, 16, 16)]
    assert view_crop_boxes(20, 20, 3) == [(0, 0, 20, 20)] * 3  # square: every crop is the frame
    for shape in ((16, 48), (48, 16), (15, 40)):
        assert view_crop_boxes(*shape, 1) == [centre_square_box(*shape)]


def test_one_crop_view_is_the_eval_transform_exactly():
    frames = torch.from_numpy(_coded_frames())
    transform = ClipTransform(8, train=False)
    assert torch.equal(transform.views(frames, 1)[0], transform(frames))
    with pytest.raises(ValueError, match="eval transform"):
        ClipTransform(8, train=True).views(frames, 3)


def _pixels(clip: torch.Tensor, transform: ClipTransform) -> torch.Tensor:
    """A normalised clip ``(C, T, H, W)`` back to 0..255 values."""
    return (clip * transform.std.view(3, 1, 1, 1) + transform.mean.view(3, 1, 1, 1)) * 255


def test_views_hold_the_frames_and_columns_they_should(coded_root):
    module = VideoDataModule(root=str(coded_root), num_frames=4, sampling_rate=2, img_size=16, num_workers=0,
                             val_fraction=0.5)
    assert next(iter(module.feature_dataloader("val", clips=3, crops=3)))[0].shape[0] == 1  # 8 // 9 videos
    views, labels = next(iter(module.feature_dataloader("val", batch_size=4, clips=3, crops=3)))
    assert views.shape == (2, 9, 3, 4, 16, 16) and sorted(labels.tolist()) == [0, 1]
    starts, lefts = view_starts(FRAMES, 4, 2, 3), [0, 16, 32]
    assert starts == [0, 8, 16]
    for i, start in enumerate(starts):
        for j, left in enumerate(lefts):
            pixels = _pixels(views[0, i * 3 + j], module.eval_transform)
            frame_code = pixels[0].mean(dim=(1, 2))  # red per frame
            expected = torch.tensor([10.0 * (start + 2 * k) for k in range(4)])
            assert torch.allclose(frame_code, expected, atol=3), (i, j, frame_code)
            column_code = pixels[1].mean(dim=(0, 1))  # green per column of the crop
            assert torch.allclose(column_code, 5.0 * (left + torch.arange(16.0)), atol=3), (i, j, column_code)


def test_one_by_one_views_are_the_centre_clip_exactly(coded_root):
    samples = [(str(next((coded_root / "a").glob("*.mp4"))), 0)]
    transform = ClipTransform(16, train=False)
    single = VideoClipDataset(samples, 4, 2, transform, mode="center")[0][0]
    views = VideoViewsDataset(samples, 4, 2, transform, clips=1, crops=1)[0][0]
    assert views.shape == (1, *single.shape) and torch.equal(views[0], single)


@pytest.mark.parametrize(("clips", "crops", "name"),
                         [(0, 3, "clips"), (2, 0, "crops"), (-1, 1, "clips"), (True, 3, "clips"), (1.5, 3, "clips")])
def test_bad_view_counts_are_refused_naming_them(coded_root, clips, crops, name):
    with pytest.raises(ValueError, match=f"test_views.{name} must be a positive integer"):
        ViewCounts(clips, crops)
    module = VideoDataModule(root=str(coded_root), num_frames=4, sampling_rate=2, img_size=16, num_workers=0,
                             val_fraction=0.5)
    with pytest.raises(ValueError, match=f"{name} must be a positive integer"):
        module.feature_dataloader("val", clips=clips, crops=crops)


def test_svm_is_refused_for_several_views():
    x, y = torch.randn(8, 4), torch.arange(8) % 2
    with pytest.raises(ValueError, match="protocol='svm'.*does not give"):
        score_views("svm", (x, y), (x[:, None].expand(8, 2, 4), y), 2, 0, {})


def _toy(tokens: bool = False, n: int = 24, views: int = 4, classes: int = 3):
    generator = torch.Generator().manual_seed(0)
    shape = (3, 8) if tokens else (8,)
    train_x = torch.randn(n, *shape, generator=generator)
    train_y = torch.arange(n) % classes
    test_views = torch.randn(6, views, *shape, generator=generator)
    return train_x, train_y, test_views, torch.arange(6) % classes


def _hand_mean(per_view: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack(per_view).mean(dim=0)


def test_linear_score_is_the_mean_of_per_view_softmaxes():
    from vtrep.probes.linear_probe import train_linear_probe

    train_x, train_y, test_views, test_y = _toy()
    options = dict(epochs=5, batch_size=8, base_lr=0.1)
    probs, report = view_probabilities("linear", train_x, train_y, test_views, 3, 0, dict(options))
    probe = train_linear_probe(train_x, train_y, 3, seed=0, **options)
    with torch.no_grad():
        hand = _hand_mean([probe(test_views[:, v]).softmax(dim=-1) for v in range(test_views.shape[1])])
    assert torch.allclose(probs, hand, atol=1e-6) and "train_accuracy" in report
    result = score_views("linear", (train_x, train_y), (test_views, test_y), 3, 0, dict(options))
    assert result["accuracy"] == pytest.approx((hand.argmax(dim=1) == test_y).float().mean().item())
    assert (result["num_train"], result["num_test"]) == (24, 6)


def test_knn_and_logistic_average_their_per_view_probabilities():
    from vtrep.eval.series_classification import fit_classifier
    from vtrep.probes.knn import knn_votes

    train_x, train_y, test_views, _ = _toy()
    views = range(test_views.shape[1])
    probs, _ = view_probabilities("knn", train_x, train_y, test_views, 3, 0, {"k": 5})
    votes = [knn_votes(train_x, train_y, test_views[:, v], k=5, num_classes=3) for v in views]
    assert torch.allclose(probs, _hand_mean([v / v.sum(dim=1, keepdim=True) for v in votes]), atol=1e-6)
    probs, report = view_probabilities("logistic", train_x, train_y, test_views, 3, 0, {})
    model, best_c = fit_classifier(train_x.numpy(), train_y.numpy(), "logistic", 0)
    hand = _hand_mean([torch.from_numpy(model.predict_proba(test_views[:, v].numpy())) for v in views])
    assert torch.allclose(probs.double(), hand, atol=1e-6) and report == {"best_c": best_c}


def test_attentive_score_is_the_mean_of_per_view_softmaxes():
    from vtrep.probes.attentive_probe import fit_attentive_probe

    train_x, train_y, test_views, _ = _toy(tokens=True)
    options = dict(epochs=2, batch_size=8, lrs=[1e-3], weight_decays=[0.01], self_attention_blocks=0, num_heads=2)
    probs, report = view_probabilities("attentive", train_x, train_y, test_views, 3, 0, dict(options))
    probe = fit_attentive_probe(train_x, train_y, train_x[:0], train_y[:0], 3, seed=0, **options).probe.eval()
    with torch.no_grad():
        hand = _hand_mean([probe(test_views[:, v]).softmax(dim=-1) for v in range(test_views.shape[1])])
    assert torch.allclose(probs, hand, atol=1e-6) and (report["lr"], report["num_holdout"]) == (1e-3, 0)


def test_folds_train_on_centre_clips_and_test_only_the_held_out_views(monkeypatch):
    import vtrep.eval.video_probe as video_probe

    x, y = torch.arange(10.0)[:, None], torch.arange(10) % 2
    views = 100 + torch.arange(10.0)[:, None, None].expand(10, 3, 1)  # video i's views hold 100 + i
    seen = []
    monkeypatch.setattr(video_probe, "score_views",
                        lambda protocol, train, test, *args: seen.append((train[0], test[0])) or {"accuracy": 0.5})
    result = cross_validate("linear", x, y, 2, 2, 0, {}, views, ViewCounts(3, 1))
    assert result["folds"] == 2 and len(seen) == 2
    tested = torch.cat([test[:, 0, 0] for _, test in seen]).sort().values
    assert torch.equal(tested, 100 + torch.arange(10.0))  # every video's views tested once
    for train, test in seen:
        assert (train < 100).all()  # training saw centre clips only
        assert not set((test[:, 0, 0] - 100).tolist()) & set(train[:, 0].tolist())  # none of the tested videos
