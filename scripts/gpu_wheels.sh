#!/usr/bin/env bash
# The Python packages the lent GPU machine lacks, as wheels in .whl/ (ignored by git; carried to it
# with `carry: [".whl"]`), for bench/gpu-acceptance.sh. That machine has its own Python 3.12 with
# torch, timm, numpy, pandas, pillow, pyarrow and pytest but not segmentation-models-pytorch,
# pyvips or the outline libraries; Snakemake is not carried (its dependencies are large): the
# acceptance run calls the code the rules' scripts call. Versions are requirements.lock's.
# Usage: bash scripts/gpu_wheels.sh   (needs pip and access to PyPI; writes .whl/, prints its size)
set -euo pipefail
cd "$(dirname "$0")/.."
PACKAGES=(segmentation-models-pytorch pyvips pyvips-binary cffi pycparser shapely rasterio affine
  cligj click-plugins)
LIMIT_MB=56 # the working tree that travels is at most 64 MiB, the project itself ~4 MiB
python="${PYTHON:-python3}"
rm -rf .whl && mkdir -p .whl
for name in "${PACKAGES[@]}"; do
  pin=$(grep -i -m1 "^${name}==" requirements.lock | cut -d' ' -f1) || true
  if [[ -z "$pin" ]]; then
    echo "error: $name is not pinned in requirements.lock: add it there (scripts/lock.sh) or drop it from scripts/gpu_wheels.sh" >&2
    exit 1
  fi
  if ! "$python" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 \
    --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl "$pin" 2>/dev/null; then
    # Pure-Python packages published as source only (pyvips): built into a wheel here.
    "$python" -m pip wheel -q --disable-pip-version-check --no-deps -w .whl "$pin"
  fi
done
count=$(ls .whl/*.whl | wc -l)
size_mb=$(du -sm .whl | cut -f1)
echo "gpu wheels: $count wheels, ${size_mb} MB in .whl/ for Python 3.12 x86_64"
if ((count != ${#PACKAGES[@]})); then
  echo "error: expected ${#PACKAGES[@]} wheels in .whl/, found $count" >&2
  exit 1
fi
if ((size_mb > LIMIT_MB)); then
  echo "error: .whl/ is ${size_mb} MB, over the ${LIMIT_MB} MB the device machine's carry leaves" >&2
  exit 1
fi
