#!/usr/bin/env bash
# The GPU path, run on one CUDA device in under 8 minutes; every stage's output goes to OUT/<stage>.log.
#
#   tools/gpu_check.sh [OUT]        (default OUT: runs/gpu_check; run from anywhere, after tools/setup_env.sh)
#
# Stages (each under its own `timeout`: 170 + 130 + 50 + 25 + 30 (SAELens setup) + 45 s = 7.5 min at most):
#   tests         pytest -m gpu tests/gpu: flex = dense fwd+bwd, sync-free SAE steps, bf16 VideoMAE step,
#                 1-GPU FSDP fit through `vtrep fit`, online SAE (bf16 tokens on the device)
#   videomae      ViT-S VideoMAE step vs transformers, bf16 autocast, eager and torch.compile
#   attention     flex backend fwd+bwd vs dense SDPA at 4k, 8k, 16k, 32k tokens
#   sae_step      TopK SAE step, dense vs sparse path
#   sae_saelens   TopK SAE step vs SAELens (installs it with tools/setup_saelens.sh if absent; skipped if
#                 that fails)
# A failed stage is recorded and the next one runs; the script exits 1 if any stage failed (2 with no GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/gpu_check}"
py="${PYTHON:-.venv/bin/python}"
mkdir -p "$out"
export VTREP_CACHE="${VTREP_CACHE:-$PWD/.cache/vtrep}"

if ! "$py" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    echo "gpu_check: no CUDA device is present (torch.cuda.is_available() is False); nothing was run." >&2
    echo "no CUDA device" > "$out/summary.txt"
    exit 2
fi
"$py" -c 'import torch; print(torch.__version__, torch.cuda.get_device_name(0))' | tee "$out/device.txt"

declare -a summary=()
failed=0
start_all=$SECONDS

# stage NAME SECONDS COMMAND...: run COMMAND under `timeout SECONDS`, log to OUT/NAME.log, record the outcome
stage() {
    local name="$1" limit="$2"
    shift 2
    local t0=$SECONDS rc=0
    echo "== $name (limit ${limit}s): $*"
    timeout --kill-after=10 "$limit" "$@" > "$out/$name.log" 2>&1 || rc=$?
    local took=$((SECONDS - t0)) verdict="ok"
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        verdict="TIMEOUT"
    elif [ "$rc" -ne 0 ]; then
        verdict="FAILED (exit $rc)"
    fi
    [ "$verdict" = "ok" ] || failed=1
    summary+=("$(printf '%-12s %-18s %4ss  %s' "$name" "$verdict" "$took" "$out/$name.log")")
    tail -n 4 "$out/$name.log" | sed 's/^/   /'
}

stage tests 170 "$py" -m pytest -q -m gpu tests/gpu -rs
stage videomae 130 "$py" tools/bench/videomae_step.py --device cuda --precision '[bf16]' \
    --mode '[eager, compiled]' --rounds 2 --steps 2 --warmup 2
stage attention 50 "$py" tools/bench/sparse_attention.py --device cuda --backend flex \
    --patterns '[local, strided, fixed]' --lengths '[4096, 8192, 16384, 32768]' --rounds 2
stage sae_step 25 "$py" tools/bench/sae_topk_step.py --device cuda --rounds 3 --steps 3

if "$py" -c 'import sae_lens' 2>/dev/null \
        || timeout 30 bash tools/setup_saelens.sh > "$out/setup_saelens.log" 2>&1; then
    stage sae_saelens 45 "$py" tools/bench/sae_vs_saelens.py --part speed --device cuda \
        --variants '[vtrep, saelens]'
else
    echo "== sae_saelens: skipped, SAELens is not importable and could not be installed (see $out/setup_saelens.log)"
    summary+=("$(printf '%-12s %-18s %4s   %s' sae_saelens skipped - "$out/setup_saelens.log")")
fi

{
    echo "gpu_check summary ($(cat "$out/device.txt"); $((SECONDS - start_all)) s in all)"
    printf '%s\n' "${summary[@]}"
} | tee "$out/summary.txt"
exit "$failed"
