#!/usr/bin/env bash
# The style the project declares (pyproject.toml's [tool.ruff], snakefmt's defaults) and
# Snakemake's own linter, all clean. Run after scripts/setup.sh test; CI runs it before the tests.
# Fix what it reports with: .venv/bin/ruff check --fix . && .venv/bin/ruff format . && .venv/bin/snakefmt Snakefile workflow/
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin
"$bin/ruff" check .
"$bin/ruff" format --check .
"$bin/snakefmt" --check Snakefile workflow/
# --lint reads the workflow with config/config.yaml; it prints "Lints for …" when it finds any.
lint=$("$bin/snakemake" --lint 2>&1) || { echo "$lint"; exit 1; }
if grep -q "Lints for" <<<"$lint"; then echo "$lint"; exit 1; fi
echo "lint: ruff, ruff format, snakefmt and snakemake --lint all clean"
