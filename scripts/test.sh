#!/usr/bin/env bash
# The README's test command: install with the test extras, then run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
# Mirador for the IIIF viewer test (npm; without it that one test is skipped, except in CI)
bash scripts/fetch_mirador.sh || echo "warning: no Mirador: tests/test_iiif.py's Mirador test will be skipped" >&2
exec .venv/bin/python -m pytest "$@"
