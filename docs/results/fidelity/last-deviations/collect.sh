#!/usr/bin/env bash
# Copy each finished run's small files into the repository's results folder.
dest=/work/main/docs/results/fidelity/last-deviations/run-files
cd /work/runs/fid
for d in */; do
  d=${d%/}; [ -f "$d/summary.json" ] || continue
  mkdir -p "$dest/$d"; cp "$d/config.json" "$d/metrics.csv" "$d/summary.json" "$dest/$d/"
done
ls "$dest"
