#!/usr/bin/env bash
# Copies each finished configuration's small files (config.json, metrics.csv, summary.json; a
# configuration is finished once its summary.json exists) from the runs outside the repository
# into run-files/, then remakes claims.md. Run it from anywhere after main.sh has finished a method.
set -eu
RUNS=${RUNS:-/work/runs/paper-grid}
HERE=$(cd "$(dirname "$0")" && pwd)
for part in main pilot-edge; do
  for run in "$RUNS/$part"/grid-world/*/; do
    [ -f "$run/summary.json" ] || continue
    dest="$HERE/run-files/$part/$(basename "$run")"
    mkdir -p "$dest"
    cp "$run"/{config.json,metrics.csv,summary.json} "$dest/"
  done
done
python "$HERE/claims.py" > /dev/null
git -C "$HERE" status --short -- .
