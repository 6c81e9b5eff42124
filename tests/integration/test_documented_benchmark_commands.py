"""Every ``vtrep benchmark`` command the README and the shipped result tables print parses as written.

The suites are minutes to hours of fits, so ``test_readme_commands`` skips them; their arguments must still be
valid for the installed jsonargparse (4.53 refused the README's ``--forecast_args '[...,0.3]'``, which an older
one had taken). Parsing only: nothing is fitted and no path has to exist.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from jsonargparse import capture_parser
from test_readme_commands import readme_commands

from vtrep.benchmark.cli import benchmark_cli

ROOT = Path(__file__).resolve().parents[2]


def documented_commands() -> list[str]:
    """The README's code-block lines and every inline ``vtrep benchmark <suite> --...`` of the README and tables
    (not a bare suite name, nor an error message quoted in the prose)."""
    texts = [ROOT / "README.md", *sorted((ROOT / "docs" / "results").glob("*/summary.md"))]
    inline = {c for path in texts for c in re.findall(r"`(vtrep benchmark \w+ [^`]+)`", path.read_text())}
    blocks = {c for c in readme_commands() if c.startswith("vtrep benchmark ")}
    return sorted(inline | blocks)


def test_the_tables_commands_are_found():
    commands = documented_commands()
    assert {shlex.split(c)[2] for c in commands} == {"ucr", "ett", "video", "quickstart"}
    assert any("--forecast_args" in c for c in commands) and len(commands) >= 15


@pytest.mark.parametrize("command", documented_commands())
def test_a_documented_benchmark_command_parses(command, capsys):
    words = shlex.split(command)[2:]
    parser = capture_parser(lambda: benchmark_cli(words))
    try:
        config = parser.parse_args(words)
    except SystemExit:
        pytest.fail(f"{command}\n  is refused: {capsys.readouterr().err.strip()}")
    assert config.subcommand == words[0]
