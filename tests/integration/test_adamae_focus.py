"""AdaMAE's sampler learns to favour the moving object (``tools/bench/adamae_focus.py``, shortened)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parents[2] / "tools/bench"


def load_focus():
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location("adamae_focus", BENCH / "adamae_focus.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH))
    return module


def test_object_tokens_from_pixel_masks():
    masks = torch.zeros(1, 4, 8, 8, dtype=torch.bool)
    masks[0, 3, 5, 6] = True  # frame 3 -> temporal slice 1; pixel (5, 6) -> patch (1, 1)
    on_object = load_focus().object_tokens(masks, patch_size=4, tubelet_size=2)
    assert on_object.shape == (1, 8) and on_object[0].nonzero().flatten().tolist() == [1 * 4 + 1 * 2 + 1]


def test_sampler_learns_to_favour_the_moving_object():
    results = load_focus().focus(steps=200, num_train=256, num_eval=32)
    after, before = results["after"], results["before"]
    assert after["ratio"] >= 2.0 and after["per_clip_median"] >= 2.0
    assert after["object_probability_mass"] > before["object_probability_mass"] + 0.2
