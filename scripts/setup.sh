#!/usr/bin/env bash
# Creates .venv (once) and installs the project into it. Usage: scripts/setup.sh [extras] [--lock sm70]
# e.g. scripts/setup.sh test  → also installs what the tests need.
# On Linux x86_64 with Python 3.11 it installs the exact versions of requirements.lock (hashes
# checked; the lock holds the test and export extras too), then the project without dependencies.
# Elsewhere it installs from pyproject.toml's lower bounds (a warning says so).
# --lock sm70 installs requirements-sm70.lock instead: the same pins but torch 2.10.0 (CUDA 12.8),
# the newest PyPI torch with kernels for sm_70 (V100) and drivers older than CUDA 13's (docs/gpus.md).
# Use it in a fresh .venv (rm -rf .venv first): switching locks in one .venv leaves the other's
# nvidia-* packages behind, so a switch is refused. The lock a .venv was made with is kept in
# .venv/heritage-lock and used again when --lock is not given (scripts/test.sh, scripts/demo.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
extras=""
lock=""
while [ $# -gt 0 ]; do
  case "$1" in
    --lock)
      case "${2:-}" in
        sm70) lock=requirements-sm70.lock ;;
        default) lock=requirements.lock ;;
        *) echo "error: --lock takes sm70 or default (got '${2:-}')" >&2; exit 2 ;;
      esac
      shift 2 ;;
    --lock=*) set -- --lock "${1#--lock=}" "${@:2}" ;;
    -*) echo "error: unknown option $1 (usage: scripts/setup.sh [extras] [--lock sm70])" >&2; exit 2 ;;
    *) extras="$1"; shift ;;
  esac
done
recorded=""
[ -f .venv/heritage-lock ] && recorded=$(cat .venv/heritage-lock)
if [ -z "$lock" ]; then
  lock=${recorded:-requirements.lock}
elif [ -n "$recorded" ] && [ "$recorded" != "$lock" ]; then
  echo "error: .venv was installed from $recorded, not $lock; switching locks in one .venv leaves the other's CUDA packages behind: rm -rf .venv first" >&2
  exit 2
fi
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
  echo "installing $lock into .venv (first time: a few minutes, PyPI's PyTorch is large)"
  "${pip[@]}" --require-hashes -r "$lock"
  "${pip[@]}" --no-deps -e "$spec"
  echo "$lock" > .venv/heritage-lock
else
  echo "warning: $lock is for Linux x86_64 with Python 3.11; installing $spec from pyproject.toml's lower bounds instead" >&2
  "${pip[@]}" -e "$spec"
fi
# the arch flags are the kernels this torch carries (torch.cuda.get_arch_list() answers [] without a GPU)
.venv/bin/python -c 'import torch, segmentation_models_pytorch, timm; kernels = torch._C._cuda_getArchFlags() if torch.version.cuda else None; print(f"torch {torch.__version__}, smp {segmentation_models_pytorch.__version__}, timm {timm.__version__}, CUDA {torch.cuda.is_available()}, kernels {kernels}")'
