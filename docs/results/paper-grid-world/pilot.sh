#!/usr/bin/env bash
# Issue 28, step 1: the learning-rate pilot (1M frames, lrs 1e-3 3e-4 1e-4, seed 73) of every
# method of Figures 5 and 9 on Grid-World. Rerun to resume (finished cells are skipped,
# running ones resume from their checkpoints). Runs at nice 19 beside other work.
set -u
cd /work/runs/paper-grid
H="nice -n 19 /work/main/.venv/bin/hypermeta"
$H sweep --env grid-world --methods rnn-hn rnn rnn-s ti-pp-hn vi-hn ti ti-naive \
    --lr 1e-3 3e-4 1e-4 --seeds 73 --frames 1000000 --out pilot
# Figure 5's RNN+HN as the authors' Grid set trained it: the "XL" policy, state embedding 256.
$H sweep --env grid-world --methods rnn-hn --state-embeds 256 \
    --lr 1e-3 3e-4 1e-4 --seeds 73 --frames 1000000 --out pilot
