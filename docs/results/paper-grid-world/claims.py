"""The paper's Grid-World claims (Figures 5 and 9) against the finished main runs: claims.md.

    python docs/results/paper-grid-world/claims.py      # reads run-files/main, writes claims.md

Uses the library's own statistics (`hypermeta.analysis`: the paper's smoothing, 68% bootstrap
CIs, frames to reach a return), on the run files committed here, so the table can be remade
from the repository alone. Only finished runs count (an unfinished method is listed as such).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from hypermeta.analysis import stats
from hypermeta.analysis.runs import load_runs
from hypermeta.methods.registry import paper_label

HERE = Path(__file__).resolve().parent
RANDOM, BAYES, ORACLE = -4.66, 37.21, 44.29  # per trial of 4 episodes (the authors' Grid-World references)
REACH = 30.0
FIG5 = ["rnn-hn", "ti-pp-hn", "vi-hn", "ti", "ti-naive"]
FIG9 = ["rnn-hn", "rnn-s", "rnn"]


def label(method: str, state_embed: int) -> str:
    """RNN+HN at 256 is the authors' "XL" policy; every other run is at the pilot's sizes."""
    return paper_label(method) + (" (256)" if method == "rnn-hn" and state_embed == 256 else "")


def summaries(df: pd.DataFrame) -> pd.DataFrame:
    """Per finished configuration: final and average return (68% CIs), frames to reach REACH."""
    rows = []
    for (method, size), runs in df[df["finished"]].groupby(["method", "state_embed"]):
        one = runs.drop(columns="state_embed")
        final, average = (stats.final_scores_ci(one, m).iloc[0] for m in ("final", "average"))
        reach = stats.frames_to_reach(one, REACH).iloc[0]
        rows.append({"method": method, "state_embed": size, "label": label(method, size), "lr": final["lr"],
                     "seeds": final["seeds"], "frames": int(one["frames"].max()),
                     **{f"final_{k}": final[k] for k in ("mean", "low", "high")},
                     **{f"average_{k}": average[k] for k in ("mean", "low", "high")},
                     "reach": reach["mean_curve"], "reached": f"{reach['reached']} of {reach['seeds']}"})
    return pd.DataFrame(rows)


def ci(r: pd.Series, metric: str) -> str:
    return f"{r[f'{metric}_mean']:.2f} [{r[f'{metric}_low']:.2f}, {r[f'{metric}_high']:.2f}]"


def order(a: pd.Series, b: pd.Series, metric: str) -> str:
    """'>' where a's 68% CI lies above b's, '<' below, '~' where they overlap."""
    if a[f"{metric}_low"] > b[f"{metric}_high"]:
        return ">"
    if a[f"{metric}_high"] < b[f"{metric}_low"]:
        return "<"
    return "~"


def main() -> None:
    df = load_runs([HERE / "run-files" / "main"])
    s = summaries(df)
    by = {r["label"]: r for _, r in s.iterrows()}
    lines = ["# The paper's Grid-World claims against our runs (claims.py)", "",
             f"Finished configurations: {len(s)}; 3 seeds x 4M frames each at the pilot's learning rate. "
             "Returns per trial of 4 episodes (deterministic evaluation on 16 trials, the paper's smoothing), "
             "mean over seeds [68% bootstrap CI]. Frames to reach: the first frames at which the smoothed "
             f"mean curve reaches {REACH:g}.", "",
             "| method | lr | final return | average return | normalised final | frames to reach 30 | seeds reaching 30 |",
             "|---|---|---|---|---|---|---|"]
    for _, r in s.sort_values("final_mean", ascending=False).iterrows():
        norm = (r["final_mean"] - RANDOM) / (BAYES - RANDOM)
        reach = f"{int(r['reach']):,}" if pd.notna(r["reach"]) else "not reached"
        lines.append(f"| {r['label']} | {r['lr']:g} | {ci(r, 'final')} | {ci(r, 'average')} | {norm:.3f} | {reach} | "
                     f"{r['reached']} |")
    expected = [paper_label(m) for m in dict.fromkeys(FIG5 + FIG9)] + [label("rnn-hn", 256)]  # Figure 5's XL RNN+HN too
    missing = [name for name in expected if name not in by]
    lines += ["", f"Normalised: (return - random) / (Bayes-optimal - random), random {RANDOM}, Bayes-optimal {BAYES} "
              f"(oracle {ORACLE}).", *([f"Not finished yet: {', '.join(missing)}."] if missing else []), "",
              "## Orderings (68% CIs: '>' above, '~' overlapping)", "",
              "| pair | final | average | frames to reach 30 |", "|---|---|---|---|"]
    pairs = [("RNN+HN", "RNN+S"), ("RNN+S", "RNN"), ("RNN+HN", "RNN"),  # Figure 9
             *[(hn, other) for hn in ("RNN+HN", "RNN+HN (256)") for other in ("TI++HN", "VI+HN", "TI", "TI Naive")],
             ("TI++HN", "TI"), ("TI++HN", "TI Naive"), ("TI++HN", "VI+HN"), ("RNN+HN", "RNN+HN (256)")]  # Figure 5
    for a, b in pairs:
        if a in by and b in by:
            ra, rb = by[a], by[b]
            faster = ("sooner" if ra["reach"] < rb["reach"] else "later") if pd.notna(ra["reach"]) and pd.notna(rb["reach"]) \
                else "n/a"
            lines.append(f"| {a} vs {b} | {order(ra, rb, 'final')} | {order(ra, rb, 'average')} | {a} {faster} |")
    (HERE / "claims.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
