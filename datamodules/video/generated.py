"""Moving dots: the embedded default video dataset, small enough to generate on a laptop CPU.

Each clip shows a few dots of random colours and sizes on a plain background of random colour,
all drifting together in one of four directions (wrapping around the frame edges, like a camera
pan over a sparse scene); the label is the direction. Colours, sizes, positions and speed vary
at random and carry no label information, so a single frame cannot tell the class: a model has
to relate frames, i.e. model time. Clips are written once as real mp4 files and read back through
the same decoder path as real data, so the synthetic default also exercises decoding.

Why several coherent dots rather than one sprite (generator version 1): with one small sprite a
mean-pooled clip feature is dominated by the background and a short CPU pretraining could not
learn the motion; with coherent dots the motion is present in many tokens.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal, Optional

import numpy as np

from datamodules.common.cache_dir import default_cache_dir  # noqa: F401 - also importable from here
from datamodules.video.datamodule import VideoDataModule
from datamodules.video.dataset import RepeatMode
from datamodules.video.decoding import Backend, write_video
from datamodules.video.transforms import IMAGENET_MEAN, IMAGENET_STD
from vtrep.io.atomic_write import atomic_new_folder

GENERATOR_VERSION = 3
# Direction of motion per class as (dy, dx) in image coordinates (y grows downwards).
DIRECTIONS = {"right": (0, 1), "left": (0, -1), "down": (1, 0), "up": (-1, 0)}
NUM_DOTS = 6
# Lossless H.264 (4:4:4, crf 0): with lossy settings codec noise on flat background patches is
# blown up to unit variance by per-patch target normalisation and drowns the motion signal.
_VIDEO = {"fps": 8, "gop": 4, "codec": "libx264", "crf": 0, "pix_fmt": "yuv444p"}
_MANIFEST = "manifest.json"


def dot_tracks(rng: np.random.Generator, direction: tuple[int, int], num_frames: int, size: int,
               num_dots: int = NUM_DOTS) -> tuple[np.ndarray, np.ndarray]:
    """Radii ``(K,)`` and centres ``(K, T, 2)`` as (y, x) of dots moving together along ``direction``.

    Sizes scale with ``size / 32``: radius 2–3.5 px and a shared speed of 1–2 px per frame at 32 px.
    Positions wrap around the frame (a torus), so every dot stays in view.
    """
    scale = size / 32
    speed = rng.uniform(1.0, 2.0) * scale
    radii = rng.uniform(2.0, 3.5, num_dots) * scale
    starts = rng.uniform(0, size, (num_dots, 2))
    steps = np.arange(num_frames, dtype=np.float64)[None, :, None]
    centres = (starts[:, None] + np.asarray(direction, dtype=np.float64) * speed * steps) % size
    return radii, centres


def render_clip(rng: np.random.Generator, direction: tuple[int, int], num_frames: int, size: int) -> np.ndarray:
    """One uint8 clip ``(T, H, W, 3)`` with dots moving along ``direction`` = (dy, dx)."""
    background = rng.uniform(0.1, 0.9, 3)
    radii, centres = dot_tracks(rng, direction, num_frames, size)
    colours = rng.uniform(0.0, 1.0, (len(radii), 3))
    frames = np.broadcast_to(background, (num_frames, size, size, 3)).copy()
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    for radius, track, colour in zip(radii, centres, colours):
        dy = np.abs(yy[None] - track[:, 0, None, None])
        dx = np.abs(xx[None] - track[:, 1, None, None])
        distance = np.hypot(np.minimum(dy, size - dy), np.minimum(dx, size - dx))  # distance on the torus
        # One pixel of soft edge renders sub-pixel positions, so slow motion is still visible.
        alpha = np.clip(radius + 0.5 - distance, 0.0, 1.0)[..., None]
        frames = frames * (1 - alpha) + colour * alpha
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


def _write_clips(folder: Path, manifest: dict) -> None:
    for class_index, (name, direction) in enumerate(DIRECTIONS.items()):
        (folder / name).mkdir(parents=True)
        for i in range(manifest["num_per_class"]):
            # A generator per clip: clip i is the same whatever num_per_class is.
            rng = np.random.default_rng([manifest["seed"], class_index, i])
            frames = render_clip(rng, direction, manifest["num_frames"], manifest["size"])
            write_video(str(folder / name / f"{name}_{i:05d}.mp4"), frames, fps=manifest["fps"],
                        codec=manifest["codec"], gop=manifest["gop"], crf=manifest["crf"],
                        pix_fmt=manifest["pix_fmt"])
    (folder / _MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def generate_moving_sprites(
    out_dir: str, num_per_class: int, num_frames: int = 8, size: int = 32, seed: int = 0
) -> Path:
    """Write the moving-dots dataset as ``out_dir/<direction>/<name>.mp4`` and return its folder.

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
    try:
        atomic_new_folder(target, lambda tmp: _write_clips(tmp, manifest))
    except OSError:
        # Another process may have finished the same dataset first; that copy is as good.
        if _read_manifest(target) != manifest:
            raise
    return target


class SyntheticVideoDataModule(VideoDataModule):
    """Moving-dots clips ``(B, C, T, H, W)`` with direction labels, generated on first use.

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
        num_per_class: int = 250,
        num_frames: int = 8,
        size: int = 32,
        seed: int = 0,
        sampling_rate: int = 1,
        img_size: int = 32,
        batch_size: int = 32,
        num_workers: int = 0,
        val_fraction: float = 0.2,
        split_seed: int = 0,
        min_scale: float = 0.5,
        hflip: bool = False,
        backend: Backend = "auto",
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        cache_decoded_mb: int = 0,
        repeats: int = 1,
        repeat_mode: RepeatMode = "independent",
    ) -> None:
        _check_generation_params(num_per_class, num_frames, size, seed)
        self.generation = dict(num_per_class=num_per_class, num_frames=num_frames, size=size, seed=seed)
        manifest = _manifest(**self.generation)
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        planned = self.cache_dir / f"moving_sprites-{_params_hash(manifest)}"
        super().__init__(root=str(planned), num_frames=num_frames, sampling_rate=sampling_rate,
                         img_size=img_size, batch_size=batch_size, num_workers=num_workers,
                         val_fraction=val_fraction, split_seed=split_seed, min_scale=min_scale,
                         hflip=hflip, backend=backend, mean=mean, std=std, cache_decoded_mb=cache_decoded_mb,
                         repeats=repeats, repeat_mode=repeat_mode)
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
