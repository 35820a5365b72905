#!/usr/bin/env bash
# Ablation: the after-code with each GRU gate orthogonal on its own (the old init), torch's
# hidden biases and the unbiased advantage std kept: which part moves Grid-World RNN+HN.
set -u
cd /work/runs/fid
while pgrep -f "run2.sh" > /dev/null; do sleep 10; done
name=grid-rnn-hn-after-pergate-init
echo "$(date +%T) $name start"
PYTHONPATH=/work/wt/abl/src HYPERMETA_COMPILE_CACHE=/work/runs/cc-fid /work/main/.venv/bin/python -m hypermeta.cli train \
  --env grid-world --method rnn-hn --frames 300000 --seeds 73 20 --lr 1e-3 --out $name > $name.log 2>&1
echo "$(date +%T) $name end rc=$?"
