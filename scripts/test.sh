#!/usr/bin/env bash
# The README's test command: install with the test extras, then run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
exec .venv/bin/python -m pytest "$@"
