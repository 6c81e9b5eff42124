"""Fault injection: a real (tiny) pretraining run over a folder that mixes good clips with every kind of
bad video. The run completes, the skip report names exactly the bad files, every usable clip is used."""

from __future__ import annotations

import json
import re
import warnings
from collections import Counter
from pathlib import Path

import lightning as L
import pytest
from lightning.pytorch.loggers import CSVLogger
from video_faults import (
    FAULTS,
    clip,
    hanging_readers,
    write_text_named_mp4,
    write_zero_byte,
)

import datamodules.video.dataset as video_dataset
import datamodules.video.decoding as decoding
from datamodules.faults.tracker import SkippedVideoWarning, TooManySkippedVideos
from datamodules.video.datamodule import VideoDataModule
from datamodules.video.decoding import write_video
from vtrep.backbones import create_video_vit
from vtrep.decoders import MAEDecoderConfig
from vtrep.masking import TubeMasking
from vtrep.tasks import VideoMAETask

GOOD_PER_CLASS = 5  # with the 11 faults: 21 train videos
BATCH = 7  # divides 21: drop_last leaves nothing out, so every file is met in the epoch
TIMEOUT_S = 0.3


def _tree(root: Path) -> tuple[set[str], set[str], dict[str, str]]:
    """``root/{train,val}/{a,b}/``; returns (usable train files, bad train files, bad file -> kind).

    Train: 5 good clips per class and the faults split between the classes. Val: one good clip per
    class and one zero-byte file.
    """
    usable, bad, kinds = set(), set(), {}
    for label, cls in enumerate("ab"):
        folder = root / "train" / cls
        folder.mkdir(parents=True)
        for i in range(GOOD_PER_CLASS):
            usable.add(str(write_video(str(folder / f"good_{i}.mp4"), clip(10 * label + i))))
        for fault in FAULTS[label::2]:
            path = folder / fault.name
            fault.write(path)
            (usable if fault.used else bad).add(str(path))
            if not fault.used:
                kinds[str(path)] = fault.kind
        (root / "val" / cls).mkdir(parents=True)
        write_video(str(root / "val" / cls / "good.mp4"), clip(50 + label))
    write_zero_byte(root / "val" / "a" / "zero_byte.mp4")
    kinds[str(root / "val" / "a" / "zero_byte.mp4")] = "empty_file"
    return usable, bad, kinds


@pytest.fixture(scope="module")
def faulty_tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set[str], set[str], dict[str, str]]:
    root = tmp_path_factory.mktemp("faulty")
    return (root, *_tree(root))


def _record_reads(monkeypatch: pytest.MonkeyPatch, log: Path) -> None:
    """Append every successfully read file to ``log`` (forked workers inherit the patch and append too)."""
    real = video_dataset.read_clip

    def read_and_log(path, *args, **kwargs):
        frames = real(path, *args, **kwargs)
        with open(log, "a") as out:
            out.write(f"{path}\n")
        return frames

    monkeypatch.setattr(video_dataset, "read_clip", read_and_log)
    monkeypatch.setattr(decoding, "_READERS", hanging_readers(decoding._READERS))


def _fit(root: Path, tmp_path: Path, batch_size: int = BATCH, **data_args) -> tuple[VideoDataModule, L.Trainer]:
    data = VideoDataModule(root=str(root), num_frames=4, sampling_rate=2, img_size=32, batch_size=batch_size,
                           decode_timeout_s=TIMEOUT_S, **data_args)
    backbone = create_video_vit("micro", img_size=32, num_frames=4, depth=1)
    task = VideoMAETask(backbone, TubeMasking(0.75), MAEDecoderConfig(32, 1, 2), export_encoder=False,
                        num_viz_clips=0)
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=CSVLogger(str(tmp_path)), enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(task, datamodule=data)
    return data, trainer


@pytest.mark.parametrize("num_workers", [0, 1])
def test_training_through_every_kind_of_bad_video(faulty_tree, tmp_path, monkeypatch, num_workers):
    root, usable, bad, kinds = faulty_tree
    log = tmp_path / "reads.txt"
    _record_reads(monkeypatch, log)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data, trainer = _fit(root, tmp_path, num_workers=num_workers, max_skip_fraction=0.5)
    assert trainer.state.finished and trainer.global_step == 3

    # The report names each bad file, with its kind, and nothing else.
    report = json.loads((Path(trainer.log_dir) / "skipped_videos.json").read_text())["passes"]
    assert report == data.skip_report()
    train = [p for p in report if p["split"] == "train"]
    assert len(train) == 1 and train[0]["complete"] and train[0]["epoch"] == 0
    assert (train[0]["planned"], train[0]["attempted"], train[0]["skipped"]) == (21, 21, len(bad))
    assert {f["path"]: f["kind"] for f in train[0]["files"]} == {p: kinds[p] for p in bad}
    val = {f["path"]: f["kind"] for p in report if p["split"] == "val" for f in p["files"]}
    assert val == {str(root / "val" / "a" / "zero_byte.mp4"): "empty_file"}
    assert {p["stage"] for p in report if p["split"] == "val"} == {"sanity_check", "validate"}
    text = (Path(trainer.log_dir) / "skipped_videos.txt").read_text()
    assert all(path in text for path in kinds)

    # Every usable clip was decoded exactly once (a batch of bad files only would add one substitute).
    reads = Counter(line for line in log.read_text().splitlines() if "/train/" in line)
    assert set(reads) == usable
    assert sum(n - 1 for n in reads.values()) == train[0]["substituted_batches"]

    # One warning per bad file, however many passes met it.
    per_file = [str(w.message) for w in caught if issubclass(w.category, SkippedVideoWarning)
                and str(w.message).startswith("skipped video")]
    assert sorted(re.search(r"'(.*?)'", m).group(1) for m in per_file) == sorted(kinds)


def test_more_bad_videos_than_max_skip_fraction_stop_the_run(tmp_path):
    root = tmp_path / "data"
    for label, cls in enumerate("ab"):
        for split in ("train", "val"):
            (root / split / cls).mkdir(parents=True)
            write_video(str(root / split / cls / "good.mp4"), clip(label))
    write_zero_byte(root / "train" / "a" / "zero_byte.mp4")
    write_text_named_mp4(root / "train" / "b" / "text_named.mp4")
    with pytest.raises(TooManySkippedVideos) as info, warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedVideoWarning)
        # 4 train videos in one batch: 2 fail, more than 0.25 x 4
        _fit(root, tmp_path / "runs", num_workers=0, batch_size=4, max_skip_fraction=0.25)
    log_dir = tmp_path / "runs" / "lightning_logs" / "version_0"
    assert str(info.value) == (
        f"train epoch 0: 2 of its 4 videos could not be used (50.0%), more than max_skip_fraction=0.25 allows. "
        f"Skipped: '{root}/train/a/zero_byte.mp4' (empty_file), '{root}/train/b/text_named.mp4' (undecodable); "
        f"full list in {log_dir}/skipped_videos.json. Fix or remove these files, or raise max_skip_fraction "
        "(a number in [0, 1]; 1 never stops)")
    files = json.loads((log_dir / "skipped_videos.json").read_text())["passes"][0]["files"]
    assert [f["path"] for f in files] == [f"{root}/train/a/zero_byte.mp4", f"{root}/train/b/text_named.mp4"]
