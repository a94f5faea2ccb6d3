#!/usr/bin/env bash
# Creates .venv (once) and installs the project into it. Usage: scripts/setup.sh [extras]
# e.g. scripts/setup.sh test  → also installs what the tests need.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  echo "error: $python is missing or older than 3.10; install Python ≥ 3.10 or set PYTHON=/path/to/python3" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv with $("$python" --version)"
  "$python" -m venv .venv || {
    echo "error: could not create a virtual environment; on Debian/Ubuntu: apt-get install python3-venv" >&2
    exit 1
  }
fi
spec="."
[ -n "$extras" ] && spec=".[$extras]"
echo "installing $spec into .venv (first time: a few minutes, PyTorch is large)"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$spec"
.venv/bin/python -c 'import torch, segmentation_models_pytorch, timm; print(f"torch {torch.__version__}, smp {segmentation_models_pytorch.__version__}, timm {timm.__version__}, CUDA {torch.cuda.is_available()}")'
