"""``vtrep --help`` lists every command quickly; a misspelt config key gets a short "did you mean" error.

All through a subprocess, as a user runs it. The ``--help`` timing bound (3 s) is generous on purpose:
the top-level help imports neither torch nor lightning and takes well under 0.1 s alone, but this runs
on small shared CI machines (2 cores) where the interpreter start itself can be slow.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vtrep.cli import EXTRA_COMMANDS, LIGHTNING_COMMANDS

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = str(ROOT / "configs/experiment/quickstart.yaml")
ALL_COMMANDS = [*LIGHTNING_COMMANDS, *EXTRA_COMMANDS]


def vtrep(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vtrep", *args], capture_output=True, text=True, timeout=300,
                          cwd=ROOT, env={**os.environ, **(env or {})})


def test_every_command_is_listed():
    assert {"fit", "validate", "test", "predict", "probe", "extract", "import-videomae", "benchmark"} <= set(ALL_COMMANDS)
    for args in (["--help"], []):
        result = vtrep(*args)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        for command in ALL_COMMANDS:
            assert sum(line.split()[:1] == [command] for line in lines) == 1, (command, result.stdout)


def test_top_level_help_is_fast_and_light():
    vtrep("--help")  # warm the file-system cache
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "vtrep", "--help"], capture_output=True,
                            text=True, timeout=60, cwd=ROOT)
    elapsed = time.perf_counter() - start
    assert result.returncode == 0
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert not imported & {"torch", "lightning", "jsonargparse", "numpy"}, imported
    assert elapsed < 3.0, f"vtrep --help took {elapsed:.2f} s"


@pytest.mark.parametrize("command", ALL_COMMANDS)
def test_usage_line_names_the_command(command):
    result = vtrep(command, "--help")
    assert result.returncode == 0, result.stderr
    usage = next(line for line in result.stdout.splitlines() if line.startswith("usage:"))
    assert usage.startswith(f"usage: vtrep {command} "), usage


def check_short_error(result: subprocess.CompletedProcess, key: str, suggestion: str) -> list[str]:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) <= 5, result.stderr
    assert "Traceback" not in result.stderr
    assert key in result.stderr and "did you mean" in result.stderr and suggestion in result.stderr
    return lines


def test_misspelt_key_on_the_command_line():
    result = vtrep("fit", "--config", QUICKSTART, "--model.init_args.mask_ratoi", "0.5", "--print_config")
    check_short_error(result, "model.init_args.mask_ratoi", "mask_ratio")


def test_misspelt_key_in_a_config_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("trainer:\n  max_stepz: 5\n")
    result = vtrep("fit", "--config", QUICKSTART, "--config", str(bad), "--print_config")
    check_short_error(result, "trainer.max_stepz", "trainer.max_steps")
    assert str(bad) in result.stderr


def test_misspelt_nested_key_in_a_config_file_is_named_with_its_nesting(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  init_args:\n    masking:\n      init_args: {mask_ratoi: 0.5}\n")
    result = vtrep("fit", "--config", QUICKSTART, "--config", str(bad), "--print_config")
    lines = check_short_error(result, "'model.init_args.masking.init_args.mask_ratoi'",
                              "'model.init_args.masking.init_args.mask_ratio'")
    assert "mask_ratoi" not in lines[1]  # the misspelt key does not suggest itself


def test_option_is_not_abbreviated():
    result = vtrep("fit", "--config", QUICKSTART, "--trainer.max_step", "5", "--print_config")
    check_short_error(result, "trainer.max_step", "trainer.max_steps")
    assert "max_steps: 5" not in result.stdout


def test_debug_shows_the_traceback():
    result = vtrep("fit", "--config", QUICKSTART, "--trainer.max_step", "5", "--print_config",
                   env={"VTREP_DEBUG": "1"})
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_a_value_a_constructor_refuses_is_one_line_naming_the_problem(tmp_path):
    result = vtrep("fit", "--config", QUICKSTART, "--data.init_args.repeats", "0", "--trainer.fast_dev_run", "1",
                   env={"VTREP_CACHE": str(tmp_path)})
    assert result.returncode == 2
    assert "vtrep fit: error: repeats must be a positive integer" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) <= 3, result.stderr
