"""Curves of the CPU learning runs (docs/results/jax-envs/runs/*/*/metrics.csv): the evaluation
return per trial (deterministic actions) and the training reward per step (sampled actions),
RNN and RNN+HN, two seeds each, with the uniform random policy's values (random_returns.txt).

    python docs/results/jax-envs/plot.py    # writes curves.png beside this file
"""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).parent
# (title, run folder, random return per trial, random reward per step), from random_returns.txt
SETTINGS = [("gymnax MetaMaze", "metamaze", 7.842, 0.03950),
            ("XLand R1-9x9 trivial-5k", "xland", 0.138, 0.00015)]
COLORS = {"rnn": "tab:blue", "rnn-hn": "tab:red"}


def main() -> None:
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    for row, (title, folder, random_return, random_step) in enumerate(SETTINGS):
        for method, color in COLORS.items():
            rows = list(csv.DictReader(open(HERE / "runs" / folder / method / "metrics.csv")))
            for i, seed in enumerate(sorted({r["seed"] for r in rows})):
                mine = [r for r in rows if r["seed"] == seed]
                frames = [int(r["frames"]) / 1e3 for r in mine]
                label = f"{method.upper().replace('-HN', '+HN')}" if i == 0 else None
                axes[row, 0].plot(frames, [float(r["meta_episode_return"]) for r in mine], color=color, label=label,
                                  alpha=0.9 - 0.3 * i)
                axes[row, 1].plot(frames, [float(r["train_reward"]) for r in mine], color=color, label=label,
                                  alpha=0.9 - 0.3 * i)
        axes[row, 0].axhline(random_return, color="grey", ls="--", label="random policy")
        axes[row, 1].axhline(random_step, color="grey", ls="--", label="random policy")
        axes[row, 0].set(title=f"{title}: evaluation return per trial", xlabel="frames per run (k)")
        axes[row, 1].set(title=f"{title}: training reward per step", xlabel="frames per run (k)")
        for ax in axes[row]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(HERE / "curves.png", dpi=110)


if __name__ == "__main__":
    main()
