#!/usr/bin/env bash
# Copies each finished configuration's small files (config.json, metrics.csv, summary.json; a
# configuration is finished once its summary.json exists) from the runs outside the repository
# into run-files/, so that a lost machine costs only the configurations in flight. Commit them.
set -eu
RUNS=${RUNS:-/work/runs/seq-models}
HERE=$(cd "$(dirname "$0")" && pwd)
for part in runs runs30; do
  for run in "$RUNS/$part"/grid-world/*/; do
    [ -f "$run/summary.json" ] || continue
    dest="$HERE/run-files/$part/$(basename "$run")"
    mkdir -p "$dest"
    cp "$run"/{config.json,metrics.csv,summary.json} "$dest/"
  done
done
git -C "$HERE" status --short -- .
