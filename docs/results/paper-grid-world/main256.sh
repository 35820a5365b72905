#!/usr/bin/env bash
# New machine (2026-12-08): the run directories were lost; only RNN+HN 256's main runs are left
# (their lr, 1e-3, was chosen by the edge pilot whose files are in run-files/pilot-edge).
set -u
cd /work/runs/paper-grid
export PYTHONPATH=/work/wt/eq29/src
nice -n 19 /work/main/.venv/bin/hypermeta sweep --env grid-world --seeds 73 74 75 --frames 4000000 --out main --methods rnn-hn --state-embeds 256 --lr 1e-3
