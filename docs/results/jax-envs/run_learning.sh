#!/usr/bin/env bash
# CPU learning runs of docs/results/jax-envs/README.md: RNN and RNN+HN, seeds 1 and 2 vmapped in
# one program per method, on gymnax MetaMaze and on XLand-MiniGrid R1-9x9 with the locally
# generated trivial-5k benchmark. Run from the repository root: bash docs/results/jax-envs/run_learning.sh
set -euo pipefail
OUT=${OUT:-runs/jax-envs}
XLAND="xland:XLand-MiniGrid-R1-9x9:benchmark=docs/results/jax-envs/trivial-5k,episodes=4"
for method in rnn rnn-hn; do
  nice -n 5 hypermeta train --env gymnax:MetaMaze-misc --method $method --seeds 1 2 --lr 1e-3 \
    --frames 256000 --eval-interval 5 --out $OUT/metamaze/$method
  nice -n 5 hypermeta train --env "$XLAND" --method $method --seeds 1 2 --lr 1e-3 \
    --frames 204800 --eval-interval 5 --out $OUT/xland/$method
done
