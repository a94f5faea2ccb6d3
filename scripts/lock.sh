#!/usr/bin/env bash
# Refreshes requirements.lock: every package the project and its test extra need, at exact versions
# with hashes, for Linux x86_64 and Python 3.11 (PyPI's torch wheel there runs on CPU and CUDA
# machines alike). Run after changing pyproject.toml's dependencies; needs uv (pip install uv).
set -euo pipefail
cd "$(dirname "$0")/.."
uv="${UV:-uv}"
header="# Exact versions with hashes for Linux x86_64, Python 3.11: scripts/setup.sh installs them. Refresh: scripts/lock.sh"
"$uv" pip compile pyproject.toml --extra test --generate-hashes \
    --python-platform x86_64-manylinux_2_28 --python-version 3.11 \
    --no-header --annotation-style line -o requirements.lock.new "$@"
{ echo "$header"; cat requirements.lock.new; } > requirements.lock && rm requirements.lock.new
echo "wrote requirements.lock ($(grep -c '==' requirements.lock) packages)"
