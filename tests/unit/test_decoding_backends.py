"""torchcodec beside decord and PyAV: every backend returns the same frames (generated and real clips,
past-the-end clamping, a header that overstates the length, variable frame rate), "auto" tries
torchcodec first and falls back, a clear error when torchcodec cannot load, and frame counts agree."""

from __future__ import annotations

import logging
import random
import sys
import types
from pathlib import Path

import pytest
from video_faults import clip, write_truncated_tail, write_variable_frame_rate

import datamodules.video.decoding as decoding
from datamodules.video import readers
from datamodules.video.decoding import VideoDecodeError, count_frames, read_frames, write_video

FIGHT_SURV = Path("/work/shared/data/fight_surv")
REAL_CLIPS = ("fight/fi001.mp4", "fight/fi076.mp4", "noFight/nofi006.mp4")  # 53, 93 and 63 frames
NUM_FRAMES = 30
# Measured: all three decoders use FFmpeg's h264 decoder and swscale's rgb24 conversion and return
# bit-identical frames on every clip here, so any difference is a wrong frame or a wrong conversion.
MAX_DIFF = 0
# (pix_fmt, crf, height, width, whether decord reads it): a camera-like clip, and the lossless 4:4:4 format
# of the generated data at two sizes. decord fails on some 4:4:4 sizes ("Check failed: from_size ==
# to_size", measured: 16x16, 32x48 and 48x48 fail; 32x32, 64x64 and 33x31 decode), as the README says of
# the generated quickstart clips; the failure is asserted so a decord that learns them shows up.
FORMATS = {"yuv420p": ("yuv420p", 18, 48, 64, True), "yuv444p_crf0": ("yuv444p", 0, 48, 48, False),
           "yuv444p_crf0_odd": ("yuv444p", 0, 33, 31, True)}


@pytest.fixture(scope="module")
def torchcodec_ok() -> None:
    problem = readers.torchcodec_problem()
    if problem is not None:
        pytest.skip(f"torchcodec cannot decode here: {problem}")


@pytest.fixture
def fresh_probe():
    """Forget the cached torchcodec probe and warnings before and after, so a faked failure stays in its test."""
    readers.torchcodec_problem.cache_clear()
    readers._warn_once.cache_clear()
    yield
    readers.torchcodec_problem.cache_clear()
    readers._warn_once.cache_clear()


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("backends")
    return {name: str(write_video(str(folder / f"{name}.mp4"), clip(7, NUM_FRAMES, height, width), fps=8, gop=4,
                                  crf=crf, pix_fmt=pix_fmt))
            for name, (pix_fmt, crf, height, width, _) in FORMATS.items()}


def _indices(total: int, seed: int) -> list[int]:
    """Random indices in any order with a repeat, then the boundaries: first, last and two past the end."""
    picks = random.Random(seed).sample(range(total), 8)
    return [*picks, picks[0], 0, total - 1, total, total + 50]


def _assert_same(path: str, indices: list[int], backends: tuple[str, ...]) -> None:
    expected = read_frames(path, indices, backend="pyav")
    for backend in backends:
        frames = read_frames(path, indices, backend=backend)
        assert frames.shape == expected.shape, f"{backend} on {path}: shape {tuple(frames.shape)}"
        diff = (frames.int() - expected.int()).abs().max().item()
        assert diff <= MAX_DIFF, f"{backend} on {path}: frames differ from PyAV's by up to {diff}"


@pytest.mark.parametrize("name", FORMATS)
def test_generated_clips_give_the_same_frames(torchcodec_ok, generated, name: str) -> None:
    path = generated[name]
    indices = _indices(NUM_FRAMES, seed=1)
    decord_reads = FORMATS[name][-1]
    _assert_same(path, indices, ("torchcodec", "decord") if decord_reads else ("torchcodec",))
    if not decord_reads:
        with pytest.raises(VideoDecodeError, match="decord: DECORDError"):
            read_frames(path, indices, backend="decord")
    clamped = read_frames(path, indices, backend="torchcodec")
    assert (clamped[-1] == clamped[-3]).all() and (clamped[-2] == clamped[-3]).all()  # past the end: last frame


def test_real_clips_give_the_same_frames(torchcodec_ok) -> None:
    paths = [FIGHT_SURV / name for name in REAL_CLIPS]
    if not all(path.is_file() for path in paths):
        pytest.skip(f"real clips not found under {FIGHT_SURV}")
    for seed, path in enumerate(paths):
        total = count_frames(str(path), "pyav")
        _assert_same(str(path), _indices(total, seed), ("torchcodec", "decord"))


def test_variable_frame_rate_clip_gives_the_same_frames(torchcodec_ok, tmp_path: Path) -> None:
    # The case that rules out torchcodec's approximate seek mode (it maps indices to time by the mean rate).
    path = tmp_path / "vfr.mp4"
    write_variable_frame_rate(path)
    for seed in range(4):
        _assert_same(str(path), random.Random(seed).sample(range(12), 4), ("torchcodec", "decord"))


def test_header_that_overstates_the_length(torchcodec_ok, tmp_path: Path) -> None:
    write_truncated_tail(tmp_path / "tail.mp4")  # the header lists 40 frames; the file holds about half
    path = str(tmp_path / "tail.mp4")
    assert count_frames(path, "torchcodec") == count_frames(path, "pyav") == 40
    _assert_same(path, [0, 2, 4, 6], ("torchcodec",))
    # select sees the header's count, as with PyAV, so a clip planned on it is the same clip.
    seen = []
    decoding.read_clip(path, lambda total: seen.append(total) or [0], backend="torchcodec")
    assert seen == [40]
    with pytest.raises(VideoDecodeError, match="torchcodec"):  # frames past the cut fail, as with PyAV
        read_frames(path, [36, 38], backend="torchcodec")


def test_count_frames_agree(torchcodec_ok, generated) -> None:
    for name, path in generated.items():
        backends = ("torchcodec", "decord", "pyav") if FORMATS[name][-1] else ("torchcodec", "pyav")
        counts = {backend: count_frames(path, backend) for backend in backends}
        assert counts == dict.fromkeys(backends, NUM_FRAMES), f"{name}: {counts}"
    for name in REAL_CLIPS[:2]:
        path = FIGHT_SURV / name
        if path.is_file():
            counts = {backend: count_frames(str(path), backend) for backend in ("torchcodec", "decord", "pyav")}
            assert len(set(counts.values())) == 1, f"{name}: {counts}"


# ---------------------------------------------------------------- the "auto" order and fallback


def _recording(monkeypatch: pytest.MonkeyPatch, failing: tuple[str, ...] = ()) -> list[str]:
    """Replace the readers with ones that record their name (and fail for ``failing``); returns the record."""
    calls: list[str] = []

    def wrap(name, read):
        def recorded(path, select):
            calls.append(name)
            if name in failing:
                raise RuntimeError(f"{name} was told to fail")
            return read(path, select)

        return recorded

    monkeypatch.setattr(decoding, "_READERS", {name: wrap(name, read) for name, read in readers.READERS.items()})
    return calls


def test_auto_tries_torchcodec_first(torchcodec_ok, generated, monkeypatch) -> None:
    calls = _recording(monkeypatch)
    frames = read_frames(generated["yuv420p"], [3, 1])
    assert calls == ["torchcodec"]
    assert (frames == read_frames(generated["yuv420p"], [3, 1], backend="pyav")).all()


def test_auto_falls_back_when_torchcodec_fails(torchcodec_ok, generated, monkeypatch) -> None:
    calls = _recording(monkeypatch, failing=("torchcodec",))
    assert read_frames(generated["yuv420p"], [3, 1]).shape == (2, 48, 64, 3)
    assert calls == ["torchcodec", "decord"]
    calls.clear()
    _recording(monkeypatch, failing=("torchcodec", "decord", "pyav"))
    with pytest.raises(VideoDecodeError) as info:
        read_frames(generated["yuv420p"], [0])
    assert list(info.value.reasons) == ["torchcodec", "decord", "pyav"]
    assert info.value.reasons["torchcodec"] == "RuntimeError: torchcodec was told to fail"


def _fake_torchcodec_without_ffmpeg(monkeypatch: pytest.MonkeyPatch) -> None:
    """torchcodec as 0.17 behaves without FFmpeg: it imports, and opening a decoder raises the loader's error."""
    package, decoders = types.ModuleType("torchcodec"), types.ModuleType("torchcodec.decoders")
    package.ffmpeg_major_version, package.decoders = None, decoders

    def video_decoder(*_args, **_kwargs):
        raise RuntimeError("Could not load libtorchcodec.\nFFmpeg version 5:\nOSError: libavutil.so.57: "
                           "cannot open shared object file: No such file or directory\n")

    decoders.VideoDecoder = video_decoder
    monkeypatch.setitem(sys.modules, "torchcodec", package)
    monkeypatch.setitem(sys.modules, "torchcodec.decoders", decoders)


def test_explicit_torchcodec_names_what_is_missing(fresh_probe, generated, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "torchcodec", None)  # makes `import torchcodec` fail
    with pytest.raises(ImportError, match=r"^backend='torchcodec' cannot be used: torchcodec is not installed"):
        read_frames(generated["yuv420p"], [0], backend="torchcodec")
    readers.torchcodec_problem.cache_clear()
    _fake_torchcodec_without_ffmpeg(monkeypatch)
    with pytest.raises(ImportError, match=r"not found: libavutil\.so\.57\).*apt-get install ffmpeg"):
        count_frames(generated["yuv420p"], backend="torchcodec")


def test_load_failure_names_the_error_that_matters() -> None:
    # Each FFmpeg version the loader tries leaves an error; the installed version's (here 5) is the real one.
    loader = RuntimeError(
        "Could not load libtorchcodec.\nFFmpeg version 6:\nOSError: libavutil.so.58: cannot open shared "
        "object file: No such file or directory\nFFmpeg version 5:\nOSError: /x/libtorchcodec_core5.so: undefined "
        "symbol: _ZN3c1013MessageLogger\nOSError: Could not load this library\n")
    reason = readers._describe_load_failure(loader)
    assert reason == ("torchcodec cannot be loaded: /x/libtorchcodec_core5.so: undefined symbol: "
                      "_ZN3c1013MessageLogger (a torchcodec built for another torch version?)")


def test_auto_leaves_torchcodec_out_with_one_warning(fresh_probe, generated, monkeypatch, caplog) -> None:
    _fake_torchcodec_without_ffmpeg(monkeypatch)
    calls = _recording(monkeypatch)
    with caplog.at_level(logging.WARNING, logger=readers.__name__):
        for _ in range(3):
            read_frames(generated["yuv420p"], [0])
        assert count_frames(generated["yuv420p"]) == NUM_FRAMES
    assert calls == ["decord"] * 3
    warnings = [record.getMessage() for record in caplog.records if record.name == readers.__name__]
    assert len(warnings) == 1 and "leaves torchcodec out" in warnings[0] and "libavutil.so.57" in warnings[0]


def test_import_of_decoding_does_not_import_torchcodec() -> None:
    import subprocess

    code = "import sys, datamodules.video.decoding; print('torchcodec' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=str(Path(__file__).resolve().parents[2]))
    assert result.stdout.strip() == "False"
