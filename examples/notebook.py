"""A notebook-style tour: train RNN+HN on Grid-World, evaluate it, play it in your own loop, plot it.

Cells are separated by `# %%` (VS Code, PyCharm and Jupytext open the file as a notebook;
`jupytext --to ipynb examples/notebook.py` makes an .ipynb). As a script, from the
repository root (the default 200,000 frames take about 2 minutes on a laptop CPU; measured:
an evaluation on 100 goals of 17.5 per trial, where random actions get -4.66 and the
Bayes-optimal policy 37.21):

    python examples/notebook.py [--frames 200000] [--num-envs 16] [--out DIR]

What it shows: `hypermeta.configure` and `hypermeta.train` (the Python form of `hypermeta
train`), `hypermeta.evaluate` (`hypermeta eval`: fresh tasks, deterministic actions, files
under RUN_DIR/eval/), `run.policy()` (a trained policy with its memory, acting step by step
in a plain Python loop over the environment's pure `reset`/`step`), and a learning curve
drawn from metrics.csv with matplotlib. Writes OUT/run/ (the run directory) and
OUT/learning_curve.png; OUT defaults to runs/example-notebook_TIME.
"""

# %% Settings: the budget and where the files go (flags when run as a script, else the defaults)
from __future__ import annotations

import argparse
import csv
import os
import time
from pathlib import Path

import jax
import matplotlib

matplotlib.use("Agg")  # draw into files: no display needed
import matplotlib.pyplot as plt  # noqa: E402

import hypermeta  # noqa: E402

parser = argparse.ArgumentParser(description="Train, evaluate, play and plot RNN+HN on Grid-World.", allow_abbrev=False)
parser.add_argument("--frames", type=int, default=int(os.environ.get("HYPERMETA_EXAMPLE_FRAMES", 200_000)),
                    help="environment frames (default 200,000, or $HYPERMETA_EXAMPLE_FRAMES)")
parser.add_argument("--num-envs", type=int, default=None, help="environments per update (default 16)")
parser.add_argument("--out", type=Path, default=Path("runs") / f"example-notebook_{time.strftime('%Y%m%d-%H%M%S')}")
args, _ = parser.parse_known_args()  # "known": a notebook kernel passes arguments of its own
FRAMES: int = args.frames
OUT: Path = args.out

# %% Configure and train
# The paper's Grid-World settings for RNN+HN (16 envs x 60 steps per update, an evaluation on
# 16 fresh goals every 5 updates), with our budget. `configure` checks every value as the
# command line does: a typo is a `hypermeta.UsageError` naming the allowed values.
overrides: dict = {"frames": FRAMES, "seeds": (73,)}
if args.num_envs is not None:
    overrides["ppo"] = {"num_envs": args.num_envs}
cfg = hypermeta.configure("grid-world", "rnn-hn", **overrides)
run = hypermeta.train(cfg, OUT / "run")
print(run, run.final_returns)  # (seed, lr) -> last evaluated return per trial

# %% Evaluate the saved policy on 100 fresh goals (what `hypermeta eval OUT/run` does)
evaluation = hypermeta.evaluate(run, trials=100)
# Per run ("seed=S,lr=LR") and task set, the mean and 95% CI of the return per trial and episode.
stats = evaluation.runs[f"seed=73,lr={cfg.lr[0]}"]["sets"]["train"]
print("meta-episode return", round(stats["meta_episode_return"]["mean"], 2),
      "per episode", [round(e["mean"], 2) for e in stats["episode_returns"]], "->", evaluation.path)

# %% Drive the trained policy in a plain Python loop: one trial of 4 episodes on one goal
policy = run.policy()  # the only run of the directory (else pass seed= and lr=)
env = policy.env  # the run's environment: GridWorld, pure functions of (key, state, action, task)
reset, step = jax.jit(env.reset), jax.jit(env.step)

key = jax.random.PRNGKey(2024)
key, task_key, reset_key = jax.random.split(key, 3)
task = env.sample_task(task_key)  # the hidden goal cell (x, y)
obs, state = reset(reset_key, task)
policy.reset()  # fresh memory: the next observation starts a trial
reward, done = 0.0, False
returns: list[float] = [0.0]  # per episode
paths: list[list[tuple[int, ...]]] = [[tuple(int(v) for v in obs)]]  # the agent's cells per episode
while True:
    action = policy.act(obs, reward=reward, done=done)  # reads the previous step's reward and done
    key, step_key, reset_key = jax.random.split(key, 3)
    obs, state, reward, done, info = step(step_key, state, action, task)
    returns[-1] += float(reward)
    paths[-1].append(tuple(int(v) for v in obs))
    if done:
        if policy.trial_ends(done):  # the K-th episode: the trial is over (the next act would start afresh)
            break
        # The next episode starts on the same goal; the policy keeps its memory across it.
        obs, state = reset(reset_key, task)
        returns.append(0.0)
        paths.append([tuple(int(v) for v in obs)])
print(f"goal {tuple(int(v) for v in task)}: episode returns {[round(r, 1) for r in returns]}")
for k, path in enumerate(paths, start=1):
    print(f"  episode {k}: {' '.join(f'({x},{y})' for x, y in path)}")

# %% Plot the learning curve from metrics.csv (one row per evaluation; `run.metrics` gives a
# pandas DataFrame where the report extra is installed)
with open(run.path / "metrics.csv", newline="") as f:
    rows = list(csv.DictReader(f))
frames = [int(r["frames"]) for r in rows]
returns_curve = [float(r["meta_episode_return"]) for r in rows]

fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(frames, returns_curve, marker="o", label="RNN+HN (16 evaluation trials)")
references = {"Bayes-optimal": (37.21, "--"), "random": (-4.66, ":")}  # docs/environments.md
for name, (value, style) in references.items():
    ax.axhline(value, linestyle=style, linewidth=1, color="gray", label=name)
ax.set(xlabel="frames", ylabel="return per trial (4 episodes)", title="Grid-World, RNN+HN")
ax.legend(loc="best", fontsize=8)
fig.tight_layout()
fig.savefig(OUT / "learning_curve.png", dpi=120)
print("saved", OUT / "learning_curve.png")
