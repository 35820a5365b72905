#!/usr/bin/env bash
# Issue 28, step 2: three seeds x 4M frames at each method's pilot-chosen learning rate
# (pilot-report/report.md: best lr by the average return over training, seed 73, 1M frames).
# Runs the code of commit 9546a71 (worktree /work/wt/eq29: `git worktree add /work/wt/eq29 9546a71`),
# so that edits of the working tree do not reach runs in flight. Rerun to resume.
set -u
cd /work/runs/paper-grid
export PYTHONPATH=/work/wt/eq29/src
H="nice -n 19 /work/main/.venv/bin/hypermeta"
S="--env grid-world --seeds 73 74 75 --frames 4000000 --out main"
$H sweep $S --methods rnn-hn rnn-s --lr 3e-4     # Figure 9 (state embedding 25, the authors' for it)
$H sweep $S --methods rnn --lr 1e-3
$H sweep $S --methods ti-pp-hn ti ti-naive --lr 3e-4  # Figure 5
$H sweep $S --methods vi-hn --lr 1e-4
$H sweep $S --methods rnn-hn --state-embeds 256 --lr 1e-3  # the authors' Grid "XL" RNN+HN
