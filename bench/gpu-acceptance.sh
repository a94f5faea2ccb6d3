#!/usr/bin/env bash
# The acceptance run for a lent GPU, one command, at most ~8 minutes on one H100/H200:
#   here:   bash scripts/gpu_wheels.sh          (once: the wheels the GPU machine lacks, .whl/)
#   there:  bash bench/gpu-acceptance.sh        (device tool: carry [".whl"])
# 1. the CUDA tests (test_gpu_sync: pytest -m gpu; and the fake-CUDA path tests, test_gpu_path);
# 2. bench/gpu_acceptance.py: the workflow's data, train (the train rule's code) for every encoder
#    at 384 px for 2 epochs, a SIGTERM mid-epoch then the resume against the uninterrupted run,
#    evaluate and predict on the GPU against the CPU (≥ 99 % of pixels equal);
# 3. the bench's GPU rows (bench/run.sh gpu's FLOPs, training imgs/s / MFU / peak memory /
#    host-sync check, inference ms), each under its own time limit.
# Everything lands in bench/results/gpu/ with summary.md; the exit status says whether it passed.
# Without a CUDA GPU it refuses in one line (exit 2).
set -uo pipefail
cd "$(dirname "$0")/.."
py="${PYTHON:-python3}"
[[ -x .venv/bin/python && -z "${PYTHON:-}" ]] && py=.venv/bin/python
if ! "$py" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  echo "gpu-acceptance: no CUDA GPU visible to $("$py" -c 'import torch; print("torch", torch.__version__)' 2>/dev/null || echo "$py (no torch)"): run it on a machine with one" >&2
  exit 2
fi
out=bench/results/gpu
mkdir -p "$out"
if [[ -d .whl ]]; then # the GPU machine's own Python lacks these (scripts/gpu_wheels.sh)
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/hds-site .whl/*.whl || exit 1
  export PYTHONPATH="/tmp/hds-site:$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1
status=0
step() { # name, limit in s, command…
  local name=$1 limit=$2
  shift 2
  echo "== $name (at most ${limit}s)"
  local start=$SECONDS
  timeout "$limit" "$@" 2>&1 | tee "$out/$name.log"
  local rc=${PIPESTATUS[0]}
  echo "$name: exit $rc in $((SECONDS - start))s" | tee -a "$out/steps.txt"
  ((rc == 0)) || status=1
}
: >"$out/steps.txt"
"$py" -c 'import torch; p = torch.cuda.get_device_properties(0); print(f"GPU: {p.name}, sm_{p.major}{p.minor}, {p.total_memory / 2**30:.0f} GiB | torch {torch.__version__} | arch {torch.cuda.get_arch_list()}")' | tee "$out/device.txt"
step pytest_gpu 90 "$py" -m pytest tests/test_gpu_sync.py tests/test_gpu_path.py -q -p no:cacheprovider
step acceptance 300 "$py" bench/gpu_acceptance.py --out "$out"
export BENCH_RESULTS="$PWD/$out"
step bench_flops 30 "$py" bench/flops.py
step bench_training 60 "$py" bench/bench_training.py
step bench_inference 30 "$py" bench/bench_inference.py --size 384
{
  echo
  echo "## Steps"
  echo
  sed 's/^/- /' "$out/steps.txt"
} >>"$out/summary.md"
cat "$out/summary.md"
exit $status
