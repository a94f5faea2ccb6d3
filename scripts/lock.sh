#!/usr/bin/env bash
# Refreshes requirements.lock: every package the project and its test extra need, at exact versions
# with hashes, for Linux x86_64 and Python 3.11 (PyPI's torch wheel there runs on CPU and CUDA
# machines alike), and writes the same pins into envs/pytorch.yaml (the conda environment the rules
# declare). Run after changing pyproject.toml's dependencies; needs uv (`pip install uv`, or UV=path).
# Extra arguments go to `uv pip compile`, e.g. `-c constraints.txt` or `--upgrade-package torch`.
set -euo pipefail
cd "$(dirname "$0")/.."
uv="${UV:-uv}"
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
