#!/usr/bin/env bash
# Create .venv (if needed) and install vtrep with the given extras, e.g. `tools/setup_env.sh dev`.
# torch>=2.14 / torchvision>=0.29 come from the package registry (a local 2.13 CPU wheel would
# not work with the registry's torchvision).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
spec="."
[ -n "$extras" ] && spec=".[${extras}]"
.venv/bin/python -m pip install --quiet -e "$spec"
