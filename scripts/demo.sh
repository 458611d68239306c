#!/usr/bin/env bash
# Set up (CPU, offline) and score the bundled example with the embedded default judge.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
.venv/bin/rationalerm run examples/rationales.jsonl --config configs/default.yaml --out runs/example "$@"
