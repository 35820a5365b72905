#!/usr/bin/env bash
# Keeps each finished configuration's small files in run-files/ (../../keep-run-files.sh), so
# that a lost machine costs only the configuration in flight. seqmodels.sh calls it after each.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
bash "$HERE/../../keep-run-files.sh" "${RUNS:-/work/runs/seq-models}" "$HERE/run-files" runs runs30
