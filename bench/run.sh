#!/usr/bin/env bash
# Runs the benchmark suite; each benchmark prints its figures and ratios and writes
# bench/results/<name>.json. Usage (after scripts/setup.sh):
#   bash bench/run.sh       every benchmark at its defaults on the device torch picks (on a CPU:
#                           the CPU sizes; on a GPU: the prototype's settings, as before)
#   bash bench/run.sh gpu   every GPU row in one command, for the three encoders at the prototype's
#                           settings (bf16, channels_last, 384 px, batch 96/32/48): FLOPs and the
#                           measured bf16 matmul peak, training imgs/s / MFU / peak memory / host-sync
#                           check without and with torch.compile, the loss at batch 96, the epoch
#                           step share at the real config's sizes, input path and inference. Writes
#                           bench/results/gpu/ (the CPU results stay). Refuses without a CUDA device.
set -euo pipefail
cd "$(dirname "$0")"
py="${PYTHON:-../.venv/bin/python}"
mode="${1:-cpu}"

run() {
  echo "== $*"
  "$py" "$@"
}

case "$mode" in
cpu)
  for bench in bench_dryrun bench_input bench_prepare bench_inference bench_training bench_loss \
    bench_epoch flops bench_scaling; do
    run "$bench.py"
  done
  ;;
gpu)
  if ! "$py" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "bench/run.sh gpu: torch ($("$py" -c 'import torch; print(torch.__version__)')) sees no" \
      "CUDA device here, so there is nothing to measure: the GPU rows are only ever measured on a" \
      "GPU. Run it on a machine with one, or 'bash bench/run.sh' for the CPU suite." >&2
    exit 2
  fi
  export BENCH_RESULTS="$PWD/results/gpu"
  "$py" -c 'import torch; print("== GPU:", torch.cuda.get_device_name(), "| torch", torch.__version__)'
  run flops.py
  run bench_training.py
  run bench_training.py --compile
  run bench_loss.py
  run bench_epoch.py
  run bench_input.py --size 384 --batch 96
  run bench_inference.py --size 384
  if "$py" -c 'import sys, torch; sys.exit(0 if torch.cuda.device_count() > 1 else 1)'; then
    run bench_scaling.py # data-parallel scaling over every visible GPU
  else
    echo "== bench_scaling.py skipped: one GPU visible (scaling needs two or more)"
  fi
  ;;
*)
  echo "usage: bash bench/run.sh [gpu]" >&2
  exit 2
  ;;
esac
