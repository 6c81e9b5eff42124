"""Moving sprites: layout, manifest reuse, labelled motion, and the data module around it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from datamodules.video.decoding import read_frames
from datamodules.video.generated import (
    DIRECTIONS,
    GENERATOR_VERSION,
    SyntheticVideoDataModule,
    dot_tracks,
    generate_moving_sprites,
    render_clip,
)

TINY = dict(num_per_class=2, num_frames=8, size=32, seed=0)


@pytest.fixture(scope="module")
def sprites(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_moving_sprites(str(tmp_path_factory.mktemp("synthetic") / "sprites"), **TINY)


def _shift_error(first: np.ndarray, later: np.ndarray, direction: tuple[int, int], frames_apart: int) -> float:
    """Smallest mean error between ``later`` and ``first`` rolled along ``direction`` by a plausible whole shift."""
    errors = []
    for shift in range(1, 2 * frames_apart + 2):
        rolled = np.roll(first, (shift * direction[0], shift * direction[1]), axis=(0, 1))
        errors.append(np.abs(later.astype(np.float32) - rolled).mean())
    return min(errors)


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


def test_dots_move_in_the_labelled_direction(sprites: Path) -> None:
    """The labelled direction explains frame 0 -> frame 2 better than any other direction."""
    for name, direction in DIRECTIONS.items():
        for video in sorted((sprites / name).glob("*.mp4")):
            frames = read_frames(str(video), range(TINY["num_frames"])).numpy()
            assert frames.shape == (8, 32, 32, 3)
            errors = {other: _shift_error(frames[0], frames[2], d, 2) for other, d in DIRECTIONS.items()}
            assert min(errors, key=errors.get) == name, f"{video.name}: {errors}"


def test_rendering_is_deterministic_and_tracks_are_coherent() -> None:
    first = render_clip(np.random.default_rng(7), (0, 1), 16, 64)
    assert np.array_equal(first, render_clip(np.random.default_rng(7), (0, 1), 16, 64))
    assert first.shape == (16, 64, 64, 3) and first.dtype == np.uint8
    for seed in range(50):
        for direction in DIRECTIONS.values():
            radii, centres = dot_tracks(np.random.default_rng(seed), direction, 8, 32)
            assert ((2 <= radii) & (radii <= 3.5)).all()
            assert centres.min() >= 0 and centres.max() < 32
            step = (centres[:, 1] - centres[:, 0] + 16) % 32 - 16  # first step, unwrapped on the torus
            moved = step @ np.array(direction, dtype=float)
            assert np.allclose(moved, moved[0]) and 1 <= moved[0] <= 2  # one shared speed, 1-2 px/frame
            assert np.allclose(step @ np.abs(np.array(direction[::-1])), 0)  # no motion across


@pytest.mark.parametrize("bad, match", [(dict(size=33), "even"), (dict(num_frames=1), "num_frames"),
                                        (dict(num_per_class=0), "num_per_class"), (dict(size=8), "size")])
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
