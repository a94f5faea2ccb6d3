#!/usr/bin/env bash
# Runs the whole benchmark suite; each benchmark prints its figures and ratios and writes
# bench/results/<name>.json. On a GPU machine the training/inference benchmarks use the seed's
# settings (384 px, batch 96/32/48). Usage: bash bench/run.sh   (after scripts/setup.sh)
set -euo pipefail
cd "$(dirname "$0")"
py="${PYTHON:-../.venv/bin/python}"
for bench in bench_dryrun bench_input bench_prepare bench_inference bench_training; do
  echo "== $bench"
  "$py" "$bench.py"
done
