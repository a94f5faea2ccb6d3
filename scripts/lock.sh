#!/usr/bin/env bash
# Refreshes requirements.lock: every package the project and its test extra need, at exact versions
# with hashes, for Linux x86_64 and Python 3.11 (PyPI's torch wheel there runs on CPU and CUDA
# machines alike), and writes the same pins into envs/pytorch.yaml (the conda environment the rules
# declare). Run after changing pyproject.toml's dependencies; needs uv (`pip install uv`, or UV=path).
# Extra arguments go to `uv pip compile`, e.g. `-c constraints.txt` or `--upgrade-package torch`.
#
# `scripts/lock.sh sm70` writes requirements-sm70.lock instead (nothing else): requirements.lock's
# pins, but torch at SM70_TORCH (default 2.10.0, the newest PyPI torch whose wheel has sm_70
# kernels: V100; CUDA 12.8) and what must match it (torchvision, triton, nvidia-*-cu12,
# cuda-bindings) as that torch asks. Run it after refreshing requirements.lock. docs/gpus.md.
set -euo pipefail
cd "$(dirname "$0")/.."
uv="${UV:-uv}"
if [ "${1:-}" = sm70 ]; then
    shift
    constraints=requirements-sm70.constraints.txt
    trap 'rm -f "$constraints" requirements-sm70.lock.new' EXIT
    {
        grep -E '^[A-Za-z0-9_.-]+==' requirements.lock | sed -E 's/ *\\$//' |
            grep -vE '^(torch|torchvision|triton|nvidia-[A-Za-z0-9_.-]+|cuda-[A-Za-z0-9_.-]+)=='
        echo "torch==${SM70_TORCH:-2.10.0}"
    } > "$constraints"
    "$uv" pip compile pyproject.toml --extra test --generate-hashes \
        --python-platform x86_64-manylinux_2_28 --python-version 3.11 \
        --no-header --annotation-style line -c "$constraints" -o requirements-sm70.lock.new "$@"
    {
        echo "# requirements.lock with torch ${SM70_TORCH:-2.10.0} (CUDA 12.8; kernels down to sm_70, V100) and what must match it, every"
        echo "# other pin as there. \`bash scripts/setup.sh test --lock sm70\` installs it; \`scripts/lock.sh sm70\` refreshes it (docs/gpus.md)."
        sed -E 's#(, )?-c [^ ,]+##; s#via , #via #' requirements-sm70.lock.new
    } > requirements-sm70.lock
    echo "wrote requirements-sm70.lock ($(grep -cE '^[A-Za-z0-9_.-]+==' requirements-sm70.lock) packages)"
    exit 0
fi
"$uv" pip compile pyproject.toml --extra test --generate-hashes \
    --python-platform x86_64-manylinux_2_28 --python-version 3.11 \
    --no-header --annotation-style line -o requirements.lock.new "$@"
{
    echo "# Exact versions with hashes for Linux x86_64, Python 3.11 (the project and its test extra)."
    echo "# scripts/setup.sh installs them; refresh with scripts/lock.sh after changing pyproject.toml."
    # constraint files given on the command line are not part of the record
    sed -E 's#(, )?-c [^ ,]+##; s#via , #via #' requirements.lock.new
} > requirements.lock
rm requirements.lock.new
{
    echo "# The environment the rules declare (\`conda:\`) for \`snakemake --sw-env conda\`: the pins of"
    echo "# requirements.lock (written by scripts/lock.sh, do not edit). The README path uses pip in .venv"
    echo "# (scripts/setup.sh), which also checks the hashes."
    echo "channels:"
    echo "  - conda-forge"
    echo "  - nodefaults"
    echo "dependencies:"
    echo "  - python =3.11"
    echo "  - pip"
    echo "  - pip:"
    grep -E '^[A-Za-z0-9_.-]+(\[[^]]*\])?==' requirements.lock | sed -E 's/ *\\$//; s/^/      - /'
    echo "      - -e ../"
} > envs/pytorch.yaml
echo "wrote requirements.lock and envs/pytorch.yaml ($(grep -cE '^[A-Za-z0-9_.-]+==' requirements.lock) packages)"
