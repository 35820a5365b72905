#!/usr/bin/env bash
# Issue 28 item 4: GRU, transformer and LRU, each plain (rnn) and +HN (rnn-hn), on Grid-World at
# 1M frames, lrs 1e-3 and 3e-4 x seeds 73 74 75 (one program per configuration); then the same six
# at 30-step rollouts (a 60-step trial spans two rollouts: the carried state and the transformer's
# cache matter) at 3e-4. Code of commit 9546a71 (worktree /work/wt/eq29). Rerun to resume.
set -u
cd /work/runs/seq-models
export PYTHONPATH=/work/wt/eq29/src
H="nice -n 19 /work/main/.venv/bin/hypermeta"
KEPT=/work/main/docs/results/sequence-models-grid-world/v2/run-files  # collect.sh's copies, committed
one() {  # out, then train options
  local out=$1; shift
  if [ -f "$out/summary.json" ]; then echo "$out: finished"; return; fi
  local kept="$KEPT/${out%%/*}/${out##*/}"  # runs/grid-world/rnn_gru -> run-files/runs/rnn_gru
  if [ -f "$kept/summary.json" ]; then echo "$out: finished (kept in $kept)"; return; fi
  if [ -f "$out/config.json" ]; then $H train --resume "$out"; else $H train --out "$out" "$@"; fi
  bash "$KEPT/../collect.sh"  # its small files into the repository's working tree at once
}
for s in gru transformer lru; do
  for m in rnn-hn rnn; do
    one runs/grid-world/${m}_$s --env grid-world --method $m --model.sequence $s --frames 1000000 \
        --seeds 73 74 75 --lr 1e-3 3e-4
  done
done
for s in gru transformer lru; do
  for m in rnn-hn rnn; do
    one runs30/grid-world/${m}_$s --env grid-world --method $m --model.sequence $s --frames 1000000 \
        --seeds 73 74 75 --lr 3e-4 --ppo.num-steps 30
  done
done
