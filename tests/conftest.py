"""Shared fixtures. Tests use tiny configs; heavy runs are marked ``slow``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return Path(os.environ.get("VTREP_SHARED", SHARED))


@pytest.fixture(scope="session")
def fight_surv(shared_dir: Path) -> Path:
    root = shared_dir / "data" / "fight_surv"
    if not root.is_dir():
        pytest.skip(f"real-data test: {root} is absent (set VTREP_SHARED to the folder holding data/fight_surv)")
    return root
