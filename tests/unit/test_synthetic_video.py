"""Moving sprites: layout, manifest reuse, labelled motion, and the data module around it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from datamodules.decoding import read_frames
from datamodules.synthetic_video import (
    DIRECTIONS,
    GENERATOR_VERSION,
    SyntheticVideoDataModule,
    _track,
    generate_moving_sprites,
    render_clip,
)

TINY = dict(num_per_class=2, num_frames=8, size=32, seed=0)


@pytest.fixture(scope="module")
def sprites(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_moving_sprites(str(tmp_path_factory.mktemp("synthetic") / "sprites"), **TINY)


def _centroids(frames: np.ndarray) -> np.ndarray:
    """Sprite centre ``(T, 2)`` as (y, x): weighted mean of the strong changes against the median frame."""
    frames = frames.astype(np.float32)
    change = np.abs(frames - np.median(frames, axis=0)).sum(-1)  # (T, H, W)
    yy, xx = np.mgrid[0:frames.shape[1], 0:frames.shape[2]]
    centres = []
    for weight in change:
        weight = np.where(weight > 0.5 * weight.max(), weight, 0.0)
        centres.append(((weight * yy).sum() / weight.sum(), (weight * xx).sum() / weight.sum()))
    return np.array(centres)


def test_layout_and_manifest(sprites: Path) -> None:
    assert sorted(p.name for p in sprites.iterdir()) == sorted([*DIRECTIONS, "manifest.json"])
    for name in DIRECTIONS:
        assert sorted(p.name for p in (sprites / name).iterdir()) == [f"{name}_00000.mp4", f"{name}_00001.mp4"]
    manifest = json.loads((sprites / "manifest.json").read_text())
    assert manifest["version"] == GENERATOR_VERSION
    assert {key: manifest[key] for key in TINY} == TINY
    assert not list(sprites.parent.glob(".*"))  # no temporary folder left behind


def test_matching_manifest_is_reused(sprites: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in sprites.rglob("*")}
    assert generate_moving_sprites(str(sprites), **TINY) == sprites
    assert {p: p.stat().st_mtime_ns for p in sprites.rglob("*")} == before


def test_different_parameters_do_not_overwrite(sprites: Path) -> None:
    manifest = (sprites / "manifest.json").read_text()
    other = generate_moving_sprites(str(sprites), **{**TINY, "num_per_class": 1, "seed": 5})
    assert other != sprites and other.name.startswith("sprites-")
    assert (sprites / "manifest.json").read_text() == manifest
    assert len(list(other.rglob("*.mp4"))) == 4


def test_sprite_moves_in_the_labelled_direction(sprites: Path) -> None:
    for name, (dy, dx) in DIRECTIONS.items():
        for video in sorted((sprites / name).glob("*.mp4")):
            frames = read_frames(str(video), range(TINY["num_frames"])).numpy()
            assert frames.shape == (8, 32, 32, 3)
            move_y, move_x = _centroids(frames)[-1] - _centroids(frames)[0]
            along, across = move_y * dy + move_x * dx, abs(move_y * dx) + abs(move_x * dy)
            assert along > 1.5 and along > 2 * across, f"{video.name}: moved ({move_y:.1f}, {move_x:.1f})"


def test_rendering_is_deterministic_and_stays_in_frame() -> None:
    first = render_clip(np.random.default_rng(7), (0, 1), 16, 64)
    assert np.array_equal(first, render_clip(np.random.default_rng(7), (0, 1), 16, 64))
    assert first.shape == (16, 64, 64, 3) and first.dtype == np.uint8
    for seed in range(200):
        for direction in DIRECTIONS.values():
            radius, centres = _track(np.random.default_rng(seed), direction, 16, 64)
            assert 5 <= radius <= 9
            assert centres.min() >= radius - 1e-9 and centres.max() <= 63 - radius + 1e-9
            speed = np.abs(np.diff(centres, axis=0)).max(axis=0).max()
            assert 1.5 - 1e-9 <= speed <= 3 + 1e-9


@pytest.mark.parametrize("bad, match", [(dict(size=33), "even"), (dict(num_frames=1), "num_frames"),
                                        (dict(num_per_class=0), "num_per_class"), (dict(size=16, num_frames=64), "too small")])
def test_bad_generation_parameters(tmp_path: Path, bad: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        generate_moving_sprites(str(tmp_path / "x"), **{**TINY, **bad})
    assert not any(tmp_path.iterdir())


def test_data_module_generates_in_setup(tmp_path: Path) -> None:
    module = SyntheticVideoDataModule(cache_dir=str(tmp_path), num_per_class=3, num_frames=8, size=32,
                                      img_size=32, batch_size=4, val_fraction=0.25)
    assert module.num_classes == 4 and not any(tmp_path.iterdir())  # nothing generated yet
    module.setup()
    (root,) = tmp_path.iterdir()
    assert root.name.startswith("moving_sprites-") and len(list(root.rglob("*.mp4"))) == 12
    assert len(module.train_samples) == 8 and len(module.val_samples) == 4
    video, label = next(iter(module.train_dataloader()))
    assert video.shape == (4, 3, 8, 32, 32) and label.shape == (4,)
    # img_size == size: the eval clip is the decoded video, only normalised.
    clip, label = module.val_set[0]
    path = module.val_samples[0][0]
    decoded = read_frames(path, range(8)).permute(3, 0, 1, 2).float() / 255
    mean, std = torch.tensor(module.hparams.mean).view(3, 1, 1, 1), torch.tensor(module.hparams.std).view(3, 1, 1, 1)
    assert torch.allclose(clip * std + mean, decoded, atol=1e-5)
    assert module.class_names[label] == Path(path).parent.name
