#!/usr/bin/env bash
# The README's main job: set up, pretrain a micro VideoMAE on the generated moving-sprite clips,
# then linear-probe the pretrained encoder next to the same encoder at random init.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup_env.sh
run_dir="runs/quickstart-$(date +%Y%m%d-%H%M%S)"
.venv/bin/vtrep fit --config configs/experiment/quickstart.yaml \
    --trainer.default_root_dir "$run_dir" --trainer.logger.init_args.save_dir "$run_dir"
encoder_dir="$(find "$run_dir" -type d -name encoder | head -n 1)"
.venv/bin/vtrep probe --config configs/probe/quickstart.yaml --encoder "$encoder_dir" \
    --output "$run_dir/probe.json"
echo "run folder: $run_dir (metrics.csv, reconstructions/, encoder/, probe.json)"
