"""The dependency order in pyproject.toml's import-linter contracts holds, and an upward import breaks it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    return subprocess.run([str(LINT), "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_contracts_are_kept():
    result = _lint(ROOT, ROOT)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "BROKEN" not in result.stdout and "4 kept, 0 broken" in result.stdout


def test_an_upward_import_breaks_them(tmp_path):
    for package in ("vtrep", "datamodules"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    # a layer importing a task: the kind of shortcut the layering exists to stop
    (tmp_path / "vtrep" / "layers" / "scratch_upward.py").write_text("from vtrep.tasks import VideoMAETask\n")
    (tmp_path / "datamodules" / "common" / "scratch_upward.py").write_text("import datamodules.video.datamodule\n")
    result = _lint(tmp_path, tmp_path)
    assert result.returncode != 0
    assert "vtrep.layers.scratch_upward -> vtrep.tasks" in result.stdout
    assert "datamodules.common.scratch_upward -> datamodules.video.datamodule" in result.stdout
