"""Moving sprites: the embedded default video dataset, small enough to generate on a laptop CPU.

Each clip shows one sprite (circle or square) crossing a static smooth background in one of
four directions, and the label is the direction. Shape, colour, size, speed, start position and
background vary at random and carry no label information, so a model has to use the motion,
i.e. model time. Clips are written once as real mp4 files and read back through the same
decoder path as real data, so the synthetic default also exercises decoding.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Literal, Optional

import numpy as np
import torch
import torch.nn.functional as F

from datamodules.decoding import write_video
from datamodules.transforms.video import IMAGENET_MEAN, IMAGENET_STD
from datamodules.video_datamodule import VideoDataModule

GENERATOR_VERSION = 1
# Direction of motion per class as (dy, dx) in image coordinates (y grows downwards).
DIRECTIONS = {"right": (0, 1), "left": (0, -1), "down": (1, 0), "up": (-1, 0)}
_VIDEO = {"fps": 8, "gop": 4, "codec": "libx264", "crf": 18}
_MANIFEST = "manifest.json"


def _background(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A smooth ``(H, W, 3)`` pattern in [0, 1] (two-colour linear gradient plus blurred noise)
    and the gradient's two end colours ``(2, 3)``."""
    colours = rng.uniform(0.1, 0.9, (2, 3))
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    ramp = np.cos(angle) * xx + np.sin(angle) * yy
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    image = colours[0] + (colours[1] - colours[0]) * ramp[..., None]
    # Bilinear upsampling of a coarse grid is a cheap low-pass noise.
    coarse = torch.from_numpy(rng.normal(0.0, 0.05, (1, 3, 6, 6)).astype(np.float32))
    noise = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)[0]
    return np.clip(image + noise.permute(1, 2, 0).numpy(), 0.0, 1.0), colours


def _sprite_colour(rng: np.random.Generator, background_colours: np.ndarray) -> np.ndarray:
    """The most distinct of 16 random colours from both gradient end colours."""
    candidates = rng.uniform(0.0, 1.0, (16, 3))
    distance = np.linalg.norm(candidates[:, None] - background_colours[None], axis=-1).min(axis=1)
    return candidates[int(distance.argmax())]


def _track(
    rng: np.random.Generator, direction: tuple[int, int], num_frames: int, size: int
) -> tuple[float, np.ndarray]:
    """Sprite radius and centres ``(T, 2)`` as (y, x), inside the frame for the whole clip."""
    scale = size / 64
    radius = rng.uniform(5, 9) * scale
    room = size - 1 - 2 * radius  # travel available to the centre along one axis
    steps = max(num_frames - 1, 1)
    speed = min(rng.uniform(1.5, 3.0) * scale, room / steps)
    drift = float(np.clip(rng.uniform(-0.3, 0.3) * scale, -room / steps, room / steps))
    t = np.arange(num_frames, dtype=np.float64)
    along = rng.uniform(radius, size - 1 - radius - speed * steps) + speed * t
    low = radius + max(0.0, -drift * steps)
    across = rng.uniform(low, size - 1 - radius - max(0.0, drift * steps)) + drift * t
    dy, dx = direction
    if dy + dx < 0:  # left / up: mirror the increasing track
        along = size - 1 - along
    centres = np.stack([along, across], 1) if dy else np.stack([across, along], 1)
    return radius, centres


def render_clip(rng: np.random.Generator, direction: tuple[int, int], num_frames: int, size: int) -> np.ndarray:
    """One uint8 clip ``(T, H, W, 3)`` with a sprite moving along ``direction`` = (dy, dx)."""
    background, end_colours = _background(rng, size)
    colour = _sprite_colour(rng, end_colours)
    radius, centres = _track(rng, direction, num_frames, size)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    dy = yy[None] - centres[:, 0, None, None]
    dx = xx[None] - centres[:, 1, None, None]
    if rng.random() < 0.5:
        distance = np.sqrt(dy ** 2 + dx ** 2)  # circle
    else:
        distance = np.maximum(np.abs(dy), np.abs(dx))  # square
    # One pixel of soft edge renders sub-pixel positions, so slow motion is still visible.
    alpha = np.clip(radius + 0.5 - distance, 0.0, 1.0)[..., None]
    frames = background[None] * (1 - alpha) + colour * alpha
    return np.round(frames * 255).astype(np.uint8)


def _manifest(num_per_class: int, num_frames: int, size: int, seed: int) -> dict:
    return {"generator": "moving_sprites", "version": GENERATOR_VERSION, "classes": list(DIRECTIONS),
            "num_per_class": num_per_class, "num_frames": num_frames, "size": size, "seed": seed, **_VIDEO}


def _params_hash(manifest: dict) -> str:
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:12]


def _read_manifest(folder: Path) -> Optional[dict]:
    try:
        return json.loads((folder / _MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def _check_generation_params(num_per_class: int, num_frames: int, size: int, seed: int) -> None:
    for name, value, low in (("num_per_class", num_per_class, 1), ("num_frames", num_frames, 2),
                             ("size", size, 16), ("seed", seed, 0)):
        if not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if size % 2:
        raise ValueError(f"size must be even (yuv420p video), got {size}")
    # Largest sprite (radius 9/64 of the frame) must still move >= 1/4 px per frame.
    if (size - 1 - 18 * size / 64) / (num_frames - 1) < 0.25:
        raise ValueError(f"size={size} is too small for num_frames={num_frames}: sprites could barely move")


def _write_clips(folder: Path, manifest: dict) -> None:
    for class_index, (name, direction) in enumerate(DIRECTIONS.items()):
        (folder / name).mkdir(parents=True)
        for i in range(manifest["num_per_class"]):
            # A generator per clip: clip i is the same whatever num_per_class is.
            rng = np.random.default_rng([manifest["seed"], class_index, i])
            frames = render_clip(rng, direction, manifest["num_frames"], manifest["size"])
            write_video(str(folder / name / f"{name}_{i:05d}.mp4"), frames, fps=manifest["fps"],
                        codec=manifest["codec"], gop=manifest["gop"], crf=manifest["crf"])
    (folder / _MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def generate_moving_sprites(
    out_dir: str, num_per_class: int, num_frames: int = 16, size: int = 64, seed: int = 0
) -> Path:
    """Write the moving-sprites dataset as ``out_dir/<direction>/<name>.mp4`` and return its folder.

    Classes are ``right``, ``left``, ``down``, ``up``. Generation is deterministic in ``seed``.
    The folder is built under a temporary name and renamed when complete, with a
    ``manifest.json`` of the generator version and parameters. An existing folder with the same
    manifest is reused as is; one with a different manifest is left alone and the data goes to
    ``<out_dir>-<hash of the parameters>`` instead, which is returned.
    """
    _check_generation_params(num_per_class, num_frames, size, seed)
    manifest = _manifest(num_per_class, num_frames, size, seed)
    target = Path(out_dir).expanduser()
    if target.exists() and _read_manifest(target) != manifest:
        target = target.with_name(f"{target.name}-{_params_hash(manifest)}")
    if target.exists():
        if _read_manifest(target) != manifest:
            raise FileExistsError(f"{str(target)!r} exists but does not hold this dataset (manifest differs)")
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        _write_clips(tmp, manifest)
        os.rename(tmp, target)
    except OSError:
        # Another process may have finished the same dataset first; that copy is as good.
        if _read_manifest(target) != manifest:
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def default_cache_dir() -> Path:
    """``$VTREP_CACHE`` if set, else ``~/.cache/vtrep``."""
    return Path(os.environ.get("VTREP_CACHE") or Path.home() / ".cache" / "vtrep").expanduser()


class SyntheticVideoDataModule(VideoDataModule):
    """Moving-sprites clips ``(B, C, T, H, W)`` with direction labels, generated on first use.

    The data lives in ``<cache_dir>/moving_sprites-<hash of the generation parameters>`` and is
    generated in :meth:`prepare_data` (``setup`` generates too if needed, so the module also
    works outside a Trainer). Clips are rendered at exactly ``size``: with ``img_size == size``
    the eval transform does no resampling.

    Args:
        cache_dir: folder for generated datasets; default ``$VTREP_CACHE`` or ``~/.cache/vtrep``.
        num_per_class: clips per direction class.
        num_frames: frames per generated clip, and per sampled clip ``T``.
        size: generated frame height and width.
        seed: generation seed.
        hflip: off by default: a horizontal flip turns ``left`` motion into ``right``.
        Other arguments: as :class:`VideoDataModule`.
    """

    def __init__(
        self,
        cache_dir: Optional[str] = None,
        num_per_class: int = 100,
        num_frames: int = 16,
        size: int = 64,
        seed: int = 0,
        sampling_rate: int = 1,
        img_size: int = 64,
        batch_size: int = 16,
        num_workers: int = 0,
        val_fraction: float = 0.2,
        split_seed: int = 0,
        min_scale: float = 0.5,
        hflip: bool = False,
        backend: Literal["auto", "decord", "pyav"] = "auto",
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
    ) -> None:
        _check_generation_params(num_per_class, num_frames, size, seed)
        self.generation = dict(num_per_class=num_per_class, num_frames=num_frames, size=size, seed=seed)
        manifest = _manifest(**self.generation)
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        planned = self.cache_dir / f"moving_sprites-{_params_hash(manifest)}"
        super().__init__(root=str(planned), num_frames=num_frames, sampling_rate=sampling_rate,
                         img_size=img_size, batch_size=batch_size, num_workers=num_workers,
                         val_fraction=val_fraction, split_seed=split_seed, min_scale=min_scale,
                         hflip=hflip, backend=backend, mean=mean, std=std)
        self.save_hyperparameters()
        self._generated = False

    def _index_at_construction(self) -> bool:
        return False  # the data is created by prepare_data

    @property
    def class_names(self) -> list[str]:
        # Known without generating, so models can be sized from the data module up front.
        return sorted(DIRECTIONS)

    def prepare_data(self) -> None:
        """Generate the clips, or find them already generated."""
        root = str(generate_moving_sprites(self.root, **self.generation))
        if root != self.root:
            self.root, self._index = root, None
        self._generated = True

    def _build_index(self) -> tuple[list[tuple[str, int]], list[tuple[str, int]], list[str]]:
        if not self._generated:
            self.prepare_data()
        index = super()._build_index()
        if index[2] != self.class_names:
            raise ValueError(f"{self.root!r} holds classes {index[2]}, expected {self.class_names}")
        return index
