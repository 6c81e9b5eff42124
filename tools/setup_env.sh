#!/usr/bin/env bash
# Create .venv (if needed) and install vtrep with the given extras, e.g. `tools/setup_env.sh dev`.
# torch>=2.14 / torchvision>=0.29 come from the package registry (a local 2.13 CPU wheel would
# not work with the registry's torchvision).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
# PyPI's torch 2.14 for x86_64 is a CUDA build: the venv takes about 6.5 GiB. Say so up front rather than
# leave pip to fail half-way with "No space left on device".
need_kib=$((7 * 1024 * 1024))
free_kib=$(df -Pk . | awk 'NR==2 {print $4}')
if [ ! -d .venv/lib ] && [ "${free_kib:-0}" -lt "$need_kib" ]; then
    echo "setup_env: $((free_kib / 1024)) MiB free under $PWD; the venv (torch's CUDA build) needs about 7 GiB" >&2
    exit 1
fi
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
spec="."
[ -n "$extras" ] && spec=".[${extras}]"
.venv/bin/python -m pip install --quiet -e "$spec"
