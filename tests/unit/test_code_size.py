"""House limits, checked: no source file over 400 lines, no function over 60 (a longer one hides stages)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("vtrep", "datamodules", "tools", "tests")
MAX_FILE_LINES, MAX_FUNCTION_LINES = 400, 60


def sources():
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def test_no_file_over_the_limit():
    long = {str(p.relative_to(ROOT)): n for p in sources() if (n := p.read_text().count("\n")) > MAX_FILE_LINES}
    assert not long, f"files over {MAX_FILE_LINES} lines: {long}"


def test_no_function_over_the_limit():
    long = {}
    for path in sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"] = lines
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"
