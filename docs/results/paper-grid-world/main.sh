#!/usr/bin/env bash
# Issue 28, step 2: three seeds x 4M frames at each method's pilot-chosen learning rate
# (pilot-report/report.md: best lr by the average return over training, seed 73, 1M frames).
# Runs the code of commit 9546a71 (worktree /work/wt/eq29: `git worktree add /work/wt/eq29 9546a71`),
# so that edits of the working tree do not reach runs in flight. Rerun to resume (finished
# methods are skipped). Order: Figure 9 first, then the cheaper task-inference methods, so that
# a session's end leaves as many finished configurations as possible.
# Where the pilot's best rate was the edge of the three piloted (RNN and RNN+HN 256 at 1e-3,
# VI+HN at 1e-4), the paper's next rate (3e-3, 3e-5) is piloted first the same way (seed 73,
# 1M frames) and the main runs use whichever of the piloted rates is best by the paper's rule.
set -u
cd /work/runs/paper-grid
export PYTHONPATH=/work/wt/eq29/src
H="nice -n 19 /work/main/.venv/bin/hypermeta"
S="--env grid-world --seeds 73 74 75 --frames 4000000 --out main"
P="--env grid-world --seeds 73 --frames 1000000"
best_lr() {  # run directories of one method's pilot -> its best lr (highest average return over training)
  /work/main/.venv/bin/python -c '
import sys
from pathlib import Path
from hypermeta.analysis import stats
from hypermeta.analysis.runs import load_runs
best = stats.best_lrs(load_runs([Path(p) for p in sys.argv[1:]]), "average")
print("%g" % best["lr"].iloc[0])' "$@"
}
$H sweep $S --methods rnn-hn rnn-s --lr 3e-4     # Figure 9 (state embedding 25, the authors' for it)
$H sweep $P --methods rnn --lr 3e-3 --out pilot-edge
LR=$(best_lr pilot/grid-world/rnn pilot-edge/grid-world/rnn); echo "rnn: main runs at lr $LR"
$H sweep $S --methods rnn --lr "$LR"
$H sweep $S --methods ti ti-naive ti-pp-hn --lr 3e-4  # Figure 5
$H sweep $P --methods vi-hn --lr 3e-5 --out pilot-edge
LR=$(best_lr pilot/grid-world/vi-hn pilot-edge/grid-world/vi-hn); echo "vi-hn: main runs at lr $LR"
$H sweep $S --methods vi-hn --lr "$LR"
$H sweep $P --methods rnn-hn --state-embeds 256 --lr 3e-3 --out pilot-edge
LR=$(best_lr pilot/grid-world/rnn-hn_state-embed-256 pilot-edge/grid-world/rnn-hn_state-embed-256)
echo "rnn-hn (256): main runs at lr $LR"
$H sweep $S --methods rnn-hn --state-embeds 256 --lr "$LR"  # the authors' Grid "XL" RNN+HN
