#!/usr/bin/env bash
# The README's main command: install, then run the whole pipeline on the embedded synthetic
# dataset at demo size (config/demo.yaml over config/config.yaml), then build the HTML report.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
# Targets before --configfile: it takes several values and would read "all" as a config file.
snakemake all "$@" --configfile config/demo.yaml
snakemake --report report.html --configfile config/demo.yaml
echo
echo "done in $(( $(date +%s) - start )) s. Results: results/model_comparison.csv, results/<encoder>/metrics.json; report: report.html"
column -s, -t < results/model_comparison.csv | cut -c1-160 || cat results/model_comparison.csv
