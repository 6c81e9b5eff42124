#!/usr/bin/env bash
# The README's test command: set up .venv with the dev extra and run the default suite
# (tests marked `slow` are excluded; run them with `.venv/bin/pytest -m slow`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup_env.sh dev
export VTREP_CACHE="${VTREP_CACHE:-$PWD/.cache/vtrep}"
.venv/bin/python -m pytest -q "$@"
