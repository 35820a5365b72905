"""Train RNN+HN on Point-Goal (point_goal.py), a JAX meta-RL environment of your own, from Python.

What it shows:

* `hypermeta.register_env`: make your environment known by name (with reference returns drawn
  on the learning curve). It names no family, so its runs start from the "generic" settings
  (`hypermeta.families.GENERIC`: 16 envs x 200 steps per update, the paper's Cheetah PPO).
* `hypermeta.configure`: the configuration `hypermeta train` would train, with overrides.
* `hypermeta.train`: every seed of the configuration in one compiled program; the returned
  `Run` reads the run directory (config.json, metrics.csv, curve.png, summary.json).

Run it from the repository root (the default 300,000 frames take about 3 minutes on a laptop
CPU, compilation included; measured: -14 to -17 per trial at the last evaluations, where the
best path ignoring the rewards gets -29.9 and an oracle -9):

    python examples/jax_env/train.py [--frames 300000] [--num-envs 16] [--out DIR]

The same from the command line needs no registration: `--env MODULE:FACTORY` imports the
module and calls the factory (here `point_goal.make`); the module must be importable, hence
PYTHONPATH (from inside this folder: `PYTHONPATH=. hypermeta train --env point_goal:make ...`):

    PYTHONPATH=examples/jax_env hypermeta train --env point_goal:make --method rnn-hn --frames 300000

`HYPERMETA_EXAMPLE_FRAMES=N` sets the default budget of every example (the tests run them tiny).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import point_goal  # beside this file: Python puts a script's folder on sys.path

import hypermeta

DEFAULT_FRAMES = 300_000


def main(frames: int = DEFAULT_FRAMES, out: Path | None = None, num_envs: int | None = None) -> hypermeta.Run:
    """Train RNN+HN on Point-Goal for `frames` frames into `out` (default: runs/example-point-goal_TIME)."""
    # Register under a short name. `replace=True` makes calling main() twice in one process (a
    # notebook re-running its cell) harmless; a name taken by something else is refused without it.
    hypermeta.register_env("point-goal", point_goal.make, reference_returns=point_goal.REFERENCE_RETURNS,
                           replace=True)

    # The generic family's settings with two changes: the budget, and the hypernetwork's state
    # embedding of Grid-World's end-to-end methods (25; the generic 256 suits MuJoCo's 17-40
    # values, the robot's position is 2). Nested sections are dicts of their fields.
    overrides: dict = {"frames": frames, "seeds": (0,), "model": {"policy_state_embed": 25}}
    if num_envs is not None:
        overrides["ppo"] = {"num_envs": num_envs}
    cfg = hypermeta.configure("point-goal", "rnn-hn", **overrides)
    print(f"{cfg.num_updates} updates of {cfg.ppo.num_envs} envs x {cfg.ppo.num_steps} steps, "
          f"evaluation every {cfg.eval_interval} updates on {cfg.eval_trials} fresh goals")

    out = Path(out) if out is not None else Path("runs") / f"example-point-goal_{time.strftime('%Y%m%d-%H%M%S')}"
    run = hypermeta.train(cfg, out)  # a progress bar; progress=False for quiet runs

    final = run.summary["final_meta_episode_return"]  # per run, keyed "seed=S,lr=LR"
    for key, value in final.items():
        references = ", ".join(f"{name} {ret:g}" for name, ret in point_goal.REFERENCE_RETURNS.items())
        print(f"{key}: return per trial {value:.2f} ({references}); curve: {run.path / 'curve.png'}")
    return run


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Train RNN+HN on the Point-Goal example environment.")
    parser.add_argument("--frames", type=int, default=int(os.environ.get("HYPERMETA_EXAMPLE_FRAMES", DEFAULT_FRAMES)),
                        help=f"environment frames (default {DEFAULT_FRAMES:,}, or $HYPERMETA_EXAMPLE_FRAMES)")
    parser.add_argument("--num-envs", type=int, default=None, help="environments per update (default 16)")
    parser.add_argument("--out", type=Path, default=None, help="the run directory to create")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(**vars(parse_args()))
