#!/usr/bin/env bash
# Install SAELens (PyPI `sae-lens`) into .venv for the optional SAELens checks:
#   tools/bench/sae_vs_saelens.py (TopK step speed and planted-dictionary recovery vs SAELens) and the
#   optional tests in tests/unit/test_sae_io.py (export loads in SAELens; SAELens files import back).
# Idempotent: does nothing when a matching sae-lens is already importable from .venv.
#
# Guard: sae-lens must only ADD packages to .venv. A pip dry run (its JSON report) lists what would be
# installed; if that includes a different version of a package already in .venv (torch, torchvision,
# transformers, lightning, numpy, ...), nothing is installed and the script exits 1 with the list.
# With sae-lens 6.54.12, torch 2.14.1 and transformers 5.24 it only adds packages (transformer-lens,
# datasets, pandas, accelerate, ... ~38 of them), so the plain install below is the whole recipe.
#
# Usage: tools/setup_saelens.sh            (after tools/setup_env.sh has created .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
spec="${SAELENS_SPEC:-sae-lens>=6.54,<7}"  # the `saelens` extra in pyproject.toml
py=.venv/bin/python
[ -x "$py" ] || { echo "no .venv: run tools/setup_env.sh first" >&2; exit 1; }

# 1. already there? (`import sae_lens` also checks its dependencies import)
if "$py" - "$spec" <<'EOF' 2>/dev/null; then
import sys
from importlib.metadata import version
from packaging.requirements import Requirement
import sae_lens  # noqa: F401
sys.exit(0 if Requirement(sys.argv[1]).specifier.contains(version("sae-lens"), prereleases=True) else 1)
EOF
    echo "sae-lens $("$py" -c 'from importlib.metadata import version; print(version("sae-lens"))') already installed"
    exit 0
fi

# 2. dry run: refuse if any already-installed package would change version
report="$(mktemp)"
trap 'rm -f "$report"' EXIT
"$py" -m pip install --quiet --dry-run --report "$report" "$spec"
"$py" - "$report" <<'EOF'
import json, sys
from importlib.metadata import PackageNotFoundError, version
from packaging.utils import canonicalize_name

changes = []
for item in json.load(open(sys.argv[1]))["install"]:
    name, new = item["metadata"]["name"], item["metadata"]["version"]
    try:
        old = version(name)
    except PackageNotFoundError:
        continue
    if canonicalize_name(name) != "sae-lens" and old != new:
        changes.append(f"{name} {old} -> {new}")
if changes:
    print("sae-lens would change packages already in .venv; not installing:\n  " + "\n  ".join(changes),
          file=sys.stderr)
    sys.exit(1)
EOF

# 3. install (adds packages only) and check the import
"$py" -m pip install --quiet "$spec"
"$py" -c 'import sae_lens; print("sae-lens", sae_lens.__version__, "installed")'
