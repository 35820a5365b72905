#!/usr/bin/env bash
# Keeps each finished configuration's small files in run-files/ (../keep-run-files.sh), then
# remakes claims.md. Run it from anywhere after main.sh has finished a method.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
bash "$HERE/../keep-run-files.sh" "${RUNS:-/work/runs/paper-grid}" "$HERE/run-files" main pilot-edge
python "$HERE/claims.py" > /dev/null
