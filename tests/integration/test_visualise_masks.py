"""``tools/visualise_masks.py`` draws a run's masking strategy from its config (and checkpoint)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

from vtrep.io.config_files import read_fit_config

ROOT = Path(__file__).resolve().parents[2]


def load_tool():
    spec = importlib.util.spec_from_file_location("visualise_masks", ROOT / "tools/visualise_masks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_visualise_adamae_run_config(tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.setenv("VTREP_CACHE", str(tmp_path / "cache"))
    config = read_fit_config(ROOT / "configs/experiment/adamae_quickstart.yaml")  # pieces inlined
    config["data"]["init_args"].update(num_per_class=2, num_workers=0, batch_size=4)
    run_config = tmp_path / "config.yaml"
    run_config.write_text(yaml.safe_dump(config))
    out = load_tool().visualise(str(run_config), num_clips=2, output=str(tmp_path / "views.png"))
    width, height = Image.open(out).size
    # 2 clips x 3 rows (input, visible tokens, sampling heatmap) of 32-px frames, 8 frames per row
    assert (height, width) == (2 + 6 * 34, 2 + 8 * 34)


def test_missing_inputs_are_named(tmp_path):
    tool = load_tool()
    with pytest.raises(FileNotFoundError, match="run_config|config="):
        tool.visualise(str(tmp_path / "nope.yaml"))
    with pytest.raises(ValueError, match="split"):
        tool.visualise(str(tmp_path / "nope.yaml"), split="test")
