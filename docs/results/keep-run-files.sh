#!/usr/bin/env bash
# keep-run-files.sh RUNS DEST PART...: copies each finished configuration's small files
# (config.json, metrics.csv, summary.json; a configuration is finished once its summary.json
# exists) from RUNS/PART/*/*/ (a sweep's ENV/CONFIG run directories, outside the repository) into
# DEST/PART/CONFIG/, so that a lost machine costs only the runs in flight. Commit DEST.
set -eu
RUNS=$1 DEST=$2
shift 2
for part in "$@"; do
  for run in "$RUNS/$part"/*/*/; do
    [ -f "$run/summary.json" ] || continue
    mkdir -p "$DEST/$part/$(basename "$run")"
    cp "$run"/{config.json,metrics.csv,summary.json} "$DEST/$part/$(basename "$run")/"
  done
done
git -C "$DEST" status --short -- .
