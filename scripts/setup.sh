#!/usr/bin/env bash
# Creates .venv (once) and installs the project into it. Usage: scripts/setup.sh [extras]
# e.g. scripts/setup.sh test  → also installs what the tests need.
# On Linux x86_64 with Python 3.11 it installs the exact versions of requirements.lock (hashes
# checked; the lock holds the test and export extras too), then the project without dependencies.
# Elsewhere it installs from pyproject.toml's lower bounds (a warning says so).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "error: $python is missing or older than 3.11 (Snakemake 9 needs 3.11); install Python ≥ 3.11 or set PYTHON=/path/to/python3" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv with $("$python" --version)"
  "$python" -m venv .venv || {
    echo "error: could not create a virtual environment; on Debian/Ubuntu: apt-get install python3-venv" >&2
    exit 1
  }
fi
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
spec="."
[ -n "$extras" ] && spec=".[$extras]"
if .venv/bin/python -c 'import platform, sys; sys.exit(not (sys.version_info[:2] == (3, 11) and sys.platform == "linux" and platform.machine() == "x86_64"))'; then
  echo "installing requirements.lock into .venv (first time: a few minutes, PyPI's PyTorch is large)"
  "${pip[@]}" --require-hashes -r requirements.lock
  "${pip[@]}" --no-deps -e "$spec"
else
  echo "warning: requirements.lock is for Linux x86_64 with Python 3.11; installing $spec from pyproject.toml's lower bounds instead" >&2
  "${pip[@]}" -e "$spec"
fi
.venv/bin/python -c 'import torch, segmentation_models_pytorch, timm; print(f"torch {torch.__version__}, smp {segmentation_models_pytorch.__version__}, timm {timm.__version__}, CUDA {torch.cuda.is_available()}")'
