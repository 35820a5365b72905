#!/usr/bin/env bash
# Two more seeds for Grid-World RNN+HN before/after (the GRU initialisation's effect).
set -u
PY=/work/main/.venv/bin/python
cd /work/runs/fid
# (started beside run.sh)
for v in before:/work/wt/base after:/work/wt/B; do
  name=grid-rnn-hn-${v%%:*}-s3-99; src=${v#*:}
  [ -f "$name/summary.json" ] && continue
  echo "$(date +%T) $name start"
  PYTHONPATH=$src/src HYPERMETA_COMPILE_CACHE=/work/runs/cc-fid $PY -m hypermeta.cli train --env grid-world --method rnn-hn \
    --frames 300000 --seeds 3 99 --lr 1e-3 --out "$name" > "$name.log" 2>&1
  echo "$(date +%T) $name end rc=$?"
done
