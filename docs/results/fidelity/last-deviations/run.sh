#!/usr/bin/env bash
# Issue 27's before/after learning runs. BEFORE = the code before the issue (worktree /work/wt/base),
# AFTER = this final code (/work/wt/B). Each run resumes if restarted.
set -u
PY=/work/main/.venv/bin/python
cd /work/runs/fid
run() {  # run NAME SRC args...
  name=$1; src=$2; shift 2
  if [ -f "$name/summary.json" ]; then echo "$name done"; return; fi
  resume=(); [ -d "$name" ] && resume=(--resume "$name")
  echo "$(date +%T) $name start"
  if [ ${#resume[@]} -gt 0 ]; then
    PYTHONPATH=$src/src HYPERMETA_COMPILE_CACHE=/work/runs/cc-fid $PY -m hypermeta.cli train --resume "$name" > "$name.log" 2>&1
  else
    PYTHONPATH=$src/src HYPERMETA_COMPILE_CACHE=/work/runs/cc-fid $PY -m hypermeta.cli train "$@" --out "$name" > "$name.log" 2>&1
  fi
  echo "$(date +%T) $name end rc=$?"
}
B=/work/wt/base; A=/work/wt/B
run grid-rnn-hn-before $B --env grid-world --method rnn-hn --frames 300000 --seeds 73 20 --lr 1e-3
run grid-rnn-hn-after  $A --env grid-world --method rnn-hn --frames 300000 --seeds 73 20 --lr 1e-3
run grid-ti-pp-hn-before $B --env grid-world --method ti-pp-hn --frames 300000 --seeds 73 20 --lr 3e-4
run grid-ti-pp-hn-after  $A --env grid-world --method ti-pp-hn --frames 300000 --seeds 73 20 --lr 3e-4
run ant-rnn-hn-reset-all $A --env ant-dir --method rnn-hn --frames 256000 --seeds 73 20 --lr 3e-4 --eval-interval 5 --ppo.return-reset all
run ant-rnn-hn-reset-own $A --env ant-dir --method rnn-hn --frames 256000 --seeds 73 20 --lr 3e-4 --eval-interval 5 --ppo.return-reset own
run cheetah-vi-hn-kl-reference $A --env cheetah-dir --method vi-hn --frames 256000 --seeds 73 20 --lr 3e-4 --eval-interval 5 --inference.kl-scale reference
run cheetah-vi-hn-kl-trial     $A --env cheetah-dir --method vi-hn --frames 256000 --seeds 73 20 --lr 3e-4 --eval-interval 5 --inference.kl-scale trial
echo "$(date +%T) all done"
