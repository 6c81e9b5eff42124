"""Listing, splitting, list files, clip sampling, transforms and the video data module."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from datamodules.common.splits import stratified_split
from datamodules.faults.loader import SkippingLoader
from datamodules.faults.skips import SkipCollate
from datamodules.faults.tracker import (
    SkippedVideoWarning,
    SkipTracker,
    TooManySkippedVideos,
)
from datamodules.video.csv_index import read_video_csv
from datamodules.video.datamodule import VideoDataModule
from datamodules.video.decoding import VideoDecodeError, write_video
from datamodules.video.folder import list_video_folder
from datamodules.video.sampling import clip_indices
from datamodules.video.transforms import IMAGENET_MEAN, IMAGENET_STD, ClipTransform

REPO = Path(__file__).resolve().parents[2]
FIGHT_SURV = Path("/work/shared/data/fight_surv")
CLASSES = ("cat", "bird", "ant")  # deliberately unsorted
PER_CLASS, FRAMES, SIZE = 5, 12, 32


@pytest.fixture(scope="module")
def video_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``root/<class>/<video>.mp4`` with 5 short clips per class, plus files that are not videos."""
    root = tmp_path_factory.mktemp("videos")
    rng = np.random.default_rng(0)
    for name in CLASSES:
        (root / name).mkdir()
        for i in range(PER_CLASS):
            frames = rng.integers(0, 256, (FRAMES, SIZE, SIZE + 8, 3), dtype=np.uint8)
            write_video(str(root / name / f"v{i}.mp4"), frames)
        (root / name / "notes.txt").write_text("not a video")
    (root / "README.md").write_text("top-level files are not classes")
    return root


def _module(root: Path, **overrides) -> VideoDataModule:
    kwargs = dict(root=str(root), num_frames=4, sampling_rate=2, img_size=16, batch_size=4,
                  num_workers=0, val_fraction=0.4)
    return VideoDataModule(**{**kwargs, **overrides})


def test_list_video_folder(video_root: Path) -> None:
    samples, classes = list_video_folder(str(video_root))
    assert classes == sorted(CLASSES)
    assert len(samples) == PER_CLASS * len(CLASSES)
    for path, label in samples:
        assert Path(path).parent.name == classes[label] and path.endswith(".mp4")
    assert samples == sorted(samples, key=lambda s: (s[1], s[0]))


def test_stratified_split_is_deterministic_disjoint_and_keeps_classes() -> None:
    samples = [(f"c{label}/v{i}.mp4", label) for label in range(3) for i in range(7 + label)]
    train, val = stratified_split(samples, 0.3, seed=1)
    assert (train, val) == stratified_split(samples, 0.3, seed=1)
    assert set(train).isdisjoint(val) and sorted(train + val) == sorted(samples)
    assert {label for _, label in train} == {label for _, label in val} == {0, 1, 2}
    assert stratified_split(samples, 0.3, seed=2) != (train, val)
    assert stratified_split(samples, 0.0)[1] == []
    # Even a tiny fraction leaves one sample of each class in val.
    assert {label for _, label in stratified_split(samples, 0.01)[1]} == {0, 1, 2}


def test_read_video_csv_both_formats(video_root: Path, tmp_path: Path) -> None:
    spaced = tmp_path / "train.txt"
    spaced.write_text("cat/v0.mp4 2\n\nbird/v1.mp4 1\n")
    assert read_video_csv(str(spaced), root=str(video_root)) == [
        (str(video_root / "cat/v0.mp4"), 2), (str(video_root / "bird/v1.mp4"), 1)]
    commas = video_root / "list.csv"  # relative paths resolve against the list's folder
    commas.write_text("path,label\nant/v0.mp4,0\n" + f"{video_root / 'cat/v4.mp4'},2\n")
    assert read_video_csv(str(commas)) == [(str(video_root / "ant/v0.mp4"), 0), (str(video_root / "cat/v4.mp4"), 2)]
    commas.unlink()


@pytest.mark.parametrize("text, error, pattern", [
    ("cat/v0.mp4 0\nbird/v1.mp4\n", ValueError, r"train.txt:2: expected"),
    ("cat/v0.mp4 0\n\nbird/v1.mp4 one\n", ValueError, r"train.txt:3: label 'one' is not an integer"),
    ("cat/v0.mp4,0\nbird/nope.mp4,1\n", FileNotFoundError, r"train.txt:2: video .*nope.mp4"),
    ("\n# only a comment\n", ValueError, "lists no videos"),
])
def test_read_video_csv_errors(video_root: Path, tmp_path: Path, text: str, error: type, pattern: str) -> None:
    list_file = tmp_path / "train.txt"
    list_file.write_text(text)
    with pytest.raises(error, match=pattern):
        read_video_csv(str(list_file), root=str(video_root))
    with pytest.raises(FileNotFoundError, match="csv_path=.*absent.csv"):
        read_video_csv(str(tmp_path / "absent.csv"))


def test_construction_errors_name_parameter_and_path(tmp_path: Path, video_root: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"root=.*nowhere"):
        _module(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=r"root=.*empty.*no class sub-folders"):
        _module(empty)
    (tmp_path / "novideo" / "cls").mkdir(parents=True)
    (tmp_path / "novideo" / "cls" / "a.txt").write_text("x")
    with pytest.raises(ValueError, match=r"novideo.*holds no videos"):
        _module(tmp_path / "novideo")
    with pytest.raises(ValueError, match="exactly one of root"):
        VideoDataModule()
    with pytest.raises(ValueError, match="exactly one of root"):
        VideoDataModule(root=str(video_root), train_csv="x.csv")
    with pytest.raises(FileNotFoundError, match="train_csv=.*x.csv"):
        VideoDataModule(train_csv=str(tmp_path / "x.csv"))
    for bad in (dict(num_frames=0), dict(batch_size=-1), dict(num_workers=-1), dict(val_fraction=1.0),
                dict(img_size=2.5), dict(backend="opencv"), dict(min_scale=0.0)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            _module(video_root, **bad)


def test_clip_indices() -> None:
    assert clip_indices(100, 4, 2, "center") == [46, 48, 50, 52]
    assert clip_indices(5, 4, 2, "center") == [0, 2, 4, 4]  # short video: clamped to the last frame
    generator = torch.Generator().manual_seed(0)
    starts = {clip_indices(20, 4, 2, "random", generator)[0] for _ in range(200)}
    assert starts == set(range(13))
    generator = torch.Generator().manual_seed(3)
    first = clip_indices(1000, 8, 4, "random", generator)
    assert first == clip_indices(1000, 8, 4, "random", torch.Generator().manual_seed(3))
    with pytest.raises(ValueError, match="sampling_rate"):
        clip_indices(10, 4, 0, "center")


def test_clip_transform_shapes_and_normalisation() -> None:
    frames = torch.full((6, 40, 50, 3), 128, dtype=torch.uint8)
    expected = ((128 / 255 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)).view(3, 1, 1, 1)
    for train in (True, False):
        clip = ClipTransform(24, train=train)(frames)
        assert clip.shape == (3, 6, 24, 24) and clip.dtype == torch.float32
        assert torch.allclose(clip, expected.expand_as(clip), atol=1e-5)
    # Eval at the native size is only normalisation: no resampling.
    native = torch.randint(0, 256, (2, 24, 24, 3), dtype=torch.uint8)
    clip = ClipTransform(24, train=False, mean=(0, 0, 0), std=(1, 1, 1))(native)
    assert torch.allclose(clip * 255, native.permute(3, 0, 1, 2).float(), atol=1e-4)
    with pytest.raises(ValueError, match="uint8"):
        ClipTransform(24, train=False)(native.float())


def test_train_crop_and_flip_are_shared_by_all_frames() -> None:
    image = torch.randint(0, 256, (1, 48, 64, 3), dtype=torch.uint8)
    transform = ClipTransform(32, train=True, min_scale=0.3)
    outputs = []
    for seed in range(8):
        clip = transform(image.expand(5, -1, -1, -1), generator=torch.Generator().manual_seed(seed))
        assert torch.equal(clip, clip[:, :1].expand_as(clip))  # static input stays static
        outputs.append(clip)
    assert len({tuple(o.flatten()[:50].tolist()) for o in outputs}) > 1
    repeat = transform(image.expand(5, -1, -1, -1), generator=torch.Generator().manual_seed(0))
    assert torch.equal(repeat, outputs[0])


def test_loaders(video_root: Path) -> None:
    module = _module(video_root)
    assert module.num_classes == 3 and module.class_names == sorted(CLASSES)
    assert len(module.train_samples) == 9 and len(module.val_samples) == 6
    video, label = next(iter(module.train_dataloader()))
    assert video.shape == (4, 3, 4, 16, 16) and video.dtype == torch.float32
    assert label.dtype == torch.int64 and len(module.train_dataloader()) == 2  # drop_last
    val_labels = torch.cat([y for _, y in module.val_dataloader()])
    assert val_labels.tolist() == [label for _, label in module.val_samples]
    first = torch.cat([x for x, _ in module.feature_dataloader("train", batch_size=5)])
    second = torch.cat([x for x, _ in module.feature_dataloader("train")])
    assert first.shape[0] == 9 and torch.equal(first, second)  # eval pipeline: deterministic


def test_two_worker_loader(video_root: Path) -> None:
    module = _module(video_root, num_workers=2)
    batches = list(module.val_dataloader())
    assert sum(x.shape[0] for x, _ in batches) == 6
    assert all(x.shape[1:] == (3, 4, 16, 16) for x, _ in batches)


def test_explicit_train_val_folders(video_root: Path, tmp_path: Path) -> None:
    for split, names in (("train", ("v0.mp4", "v1.mp4")), ("val", ("v2.mp4",))):
        for cls in ("x", "y"):
            (tmp_path / split / cls).mkdir(parents=True)
            for name in names:
                (tmp_path / split / cls / name).symlink_to(video_root / "ant" / name)
    module = _module(tmp_path)
    assert module.class_names == ["x", "y"]
    assert len(module.train_samples) == 4 and len(module.val_samples) == 2


def test_csv_mode(video_root: Path, tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text("".join(f"{c}/v{i}.mp4 {n}\n" for n, c in enumerate(CLASSES) for i in range(4)))
    (tmp_path / "val.csv").write_text("cat/v4.mp4,0\nant/v4.mp4,2\n")
    with pytest.raises(FileNotFoundError, match="train.csv:1: video"):  # paths resolve against the list's folder
        VideoDataModule(train_csv=str(tmp_path / "train.csv"), val_csv=str(tmp_path / "val.csv"))
    for name in CLASSES:
        (tmp_path / name).symlink_to(video_root / name)
    module = VideoDataModule(train_csv=str(tmp_path / "train.csv"), val_csv=str(tmp_path / "val.csv"),
                             num_frames=4, sampling_rate=2, img_size=16, batch_size=2, num_workers=0)
    assert module.num_classes == 3 and len(module.train_samples) == 12 and len(module.val_samples) == 2
    assert next(iter(module.val_dataloader()))[0].shape == (2, 3, 4, 16, 16)


def test_package_import_is_light_and_exports_resolve() -> None:
    code = "import sys, datamodules; assert 'torch' not in sys.modules, 'import datamodules pulled in torch'"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
    import datamodules

    assert datamodules.VideoDataModule is VideoDataModule
    assert all(getattr(datamodules, name) is not None for name in datamodules.__all__)


def test_fight_surv_folder() -> None:
    if not FIGHT_SURV.is_dir():
        pytest.skip(f"real dataset not found at {FIGHT_SURV}")
    samples, classes = list_video_folder(str(FIGHT_SURV))
    assert classes == ["fight", "noFight"] and len(samples) == 300
    module = VideoDataModule(root=str(FIGHT_SURV), num_workers=0, img_size=112, num_frames=8)
    assert len(module.train_samples) == 240 and len(module.val_samples) == 60
    module.setup()
    video, label = module.val_set[0]
    assert video.shape == (3, 8, 112, 112) and label == 0


# ---------------------------------------------------------------- bad videos
def _tree_with_bad_val(root: Path) -> Path:
    """Train: 2 good clips per class. Val (read in order): a/bad_0 (empty), a/bad_1 (text), a/good, b/good."""
    rng = np.random.default_rng(1)
    for split, cls in (("train", "a"), ("train", "b"), ("val", "a"), ("val", "b")):
        (root / split / cls).mkdir(parents=True)
        for i in range(2 if split == "train" else 1):
            write_video(str(root / split / cls / f"good{i}.mp4"), rng.integers(0, 256, (FRAMES, SIZE, SIZE, 3), np.uint8))
    (root / "val" / "a" / "bad_0.mp4").write_bytes(b"")
    (root / "val" / "a" / "bad_1.mp4").write_text("not a video")
    return root


def _val_passes(module: VideoDataModule, passes: int) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
    loader = module.val_dataloader()  # one loader, iterated once per epoch, as Lightning does
    return [list(loader) for _ in range(passes)]


def test_bad_videos_are_dropped_counted_and_warned_once(tmp_path: Path) -> None:
    module = _module(_tree_with_bad_val(tmp_path), batch_size=2, max_skip_fraction=0.5)
    with pytest.warns(SkippedVideoWarning) as caught:
        first, second = _val_passes(module, 2)
    # Batch 1 held only the two bad files: replaced by the first loadable clip (a/good0, then b/good0).
    assert [(x.shape[0], y.tolist()) for x, y in first] == [(1, [0]), (2, [0, 1])]
    assert [(x.shape[0], y.tolist()) for x, y in second] == [(1, [1]), (2, [0, 1])]
    assert all(x.shape[1:] == (3, 4, 16, 16) for x, _ in first + second)
    bad = [str(tmp_path / "val" / "a" / name) for name in ("bad_0.mp4", "bad_1.mp4")]
    messages = [str(w.message) for w in caught]
    assert [m.split(" (")[0] for m in messages if m.startswith("skipped video")] == [f"skipped video {p!r}" for p in bad]
    assert [m for m in messages if m.startswith("val epoch")] == ["val epoch 0: skipped 2 of 4 videos (50.0%)",
                                                                    "val epoch 1: skipped 2 of 4 videos (50.0%)"]
    report = module.skip_report()
    assert [(p["epoch"], p["complete"], p["planned"], p["attempted"], p["skipped"], p["substituted_batches"])
            for p in report] == [(0, True, 4, 4, 2, 1), (1, True, 4, 4, 2, 1)]
    assert [(f["path"], f["kind"]) for f in report[0]["files"]] == [(bad[0], "empty_file"), (bad[1], "undecodable")]


def test_too_many_bad_videos_stop_with_the_files_named(tmp_path: Path) -> None:
    module = _module(_tree_with_bad_val(tmp_path), batch_size=2, max_skip_fraction=0.4)
    with pytest.raises(TooManySkippedVideos) as info, pytest.warns(SkippedVideoWarning):
        _val_passes(module, 1)
    bad = tmp_path / "val" / "a"
    assert str(info.value) == (
        f"val epoch 0: 2 of its 4 videos could not be used (50.0%), more than max_skip_fraction=0.4 allows. "
        f"Skipped: '{bad}/bad_0.mp4' (empty_file), '{bad}/bad_1.mp4' (undecodable). Fix or remove these files, "
        "or raise max_skip_fraction (a number in [0, 1]; 1 never stops)")


def test_short_clips_are_skipped_or_padded(tmp_path: Path) -> None:
    root = _tree_with_bad_val(tmp_path)
    (root / "val" / "a" / "bad_0.mp4").unlink()
    (root / "val" / "a" / "bad_1.mp4").unlink()
    write_video(str(root / "val" / "b" / "short.mp4"), np.zeros((3, SIZE, SIZE, 3), np.uint8))
    with pytest.warns(SkippedVideoWarning) as caught:
        skipped = _val_passes(_module(root, batch_size=3, max_skip_fraction=0.5), 1)[0]
    assert "short.mp4' (too_short)" in str(caught[0].message)
    padded = _val_passes(_module(root, batch_size=3, short_clips="pad"), 1)[0]
    assert [x.shape[0] for x, _ in skipped] == [2] and [x.shape[0] for x, _ in padded] == [3]


def test_feature_loader_never_drops_an_item(tmp_path: Path) -> None:
    """Features are matched to items by position: short clips are padded, a bad file stops extraction."""
    root = _tree_with_bad_val(tmp_path)
    (root / "val" / "a" / "bad_1.mp4").unlink()
    write_video(str(root / "val" / "a" / "bad_1.mp4"), np.zeros((3, SIZE, SIZE, 3), np.uint8))  # too short
    module = _module(root, batch_size=2)
    assert sum(x.shape[0] for x, _ in module.feature_dataloader("train")) == 4
    (root / "val" / "a" / "bad_0.mp4").unlink()
    module = _module(root, batch_size=2)
    assert sum(x.shape[0] for x, _ in module.feature_dataloader("val")) == 3
    (root / "val" / "a" / "bad_0.mp4").write_bytes(b"")
    module = _module(root, batch_size=2)
    with pytest.raises(VideoDecodeError, match="bad_0.mp4"):
        list(module.feature_dataloader("val"))


def test_lightning_can_rebuild_the_skipping_loader(tmp_path: Path) -> None:
    from lightning.fabric.utilities.data import _replace_dunder_methods
    from lightning.pytorch.utilities.data import _update_dataloader
    from torch.utils.data import DataLoader, SequentialSampler

    module = _module(_tree_with_bad_val(tmp_path), batch_size=2, max_skip_fraction=0.5)
    with _replace_dunder_methods(DataLoader, "dataset"):  # as Lightning does around *_dataloader()
        loader = module.val_dataloader()
    rebuilt = _update_dataloader(loader, SequentialSampler(loader.dataset))  # e.g. a DistributedSampler under DDP
    assert isinstance(rebuilt, SkippingLoader) and rebuilt.tracker is module.skip_tracker
    assert rebuilt.split == "val" and isinstance(rebuilt.collate_fn, SkipCollate)
    assert not isinstance(rebuilt.collate_fn.inner, SkipCollate)
    with pytest.warns(SkippedVideoWarning):
        assert sum(x.shape[0] for x, _ in rebuilt) == 3


@pytest.mark.parametrize("bad, message", [
    (dict(max_skip_fraction=1.5), "max_skip_fraction must be a number in [0, 1]"),
    (dict(max_skip_fraction=-0.1), "max_skip_fraction must be a number in [0, 1]"),
    (dict(short_clips="drop"), "short_clips must be one of ('skip', 'pad'), got 'drop'"),
    (dict(decode_timeout_s=0), "decode_timeout_s must be a positive number of seconds or None, got 0"),
])
def test_bad_video_arguments(video_root: Path, bad: dict, message: str) -> None:
    with pytest.raises(ValueError) as info:
        _module(video_root, **bad)
    assert message in str(info.value)


class _StuckDataset(torch.utils.data.Dataset):
    """Every batch fetch blocks for 2 s, like a decoder stuck where no signal reaches it."""

    def __len__(self) -> int:
        return 2

    def __getitems__(self, indices: list[int]) -> list:
        time.sleep(2)
        return [(torch.zeros(1), 0) for _ in indices]


def test_a_stuck_worker_stops_the_run_with_an_explanation() -> None:
    loader = SkippingLoader(_StuckDataset(), tracker=SkipTracker(0.1), split="train", decode_timeout_s=0.1,
                            batch_size=2, num_workers=1, timeout=0.5)
    with pytest.raises(RuntimeError, match=r"^no batch of the train split arrived within the DataLoader timeout "
                                           r"of 0.5 s: a worker is stuck.*decode_timeout_s=0.1"):
        next(iter(loader))
