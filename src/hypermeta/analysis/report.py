"""`hypermeta report`: the paper's figures, tables and statistics from run directories.

Every method is shown at its best learning rate (the paper: the lr whose mean over
seeds of the average return over training is highest). Curves are smoothed per run
(trailing moving average over 10% of the points) and shown as the mean over seeds
with a 68% bootstrap confidence interval, like the paper's figures, over the faint mean
of the raw evaluations.

Diverged runs (non-finite losses or parameters during training) are listed in their own
section and flagged in the table of every learning rate; an lr with a diverged run in any
seed is not eligible as the best lr, so no figure, table of best lrs or aggregate holds one.
"""

from __future__ import annotations

import io
from pathlib import Path

from hypermeta.errors import UsageError

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd

    from hypermeta.analysis import stats
    from hypermeta.analysis.plot import seeds_text
    from hypermeta.analysis.runs import common_budget, load_runs
except ImportError as e:  # scipy / pandas / rliable come with the 'report' extra
    raise UsageError(f"hypermeta report needs the report extra ({e.name} is missing): pip install 'hypermeta[report]'") from None

from hypermeta.envs.registry import ENVIRONMENTS
from hypermeta.methods.registry import paper_label
from hypermeta.rundir import atomic_write_bytes

GRAD_COLUMNS = {"latent_grad_norm": "latent gradient norm", "state_grad_norm": "state gradient norm"}


def _label(method: str) -> str:
    return paper_label(method)


def _colors(methods: list[str]) -> dict[str, str]:
    return {m: f"C{i % 10}" for i, m in enumerate(methods)}


def _save(fig, out: Path, stem: str) -> list[Path]:
    """PNG and PDF of `fig`, each written atomically."""
    paths = []
    for fmt in ("png", "pdf"):
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=130, bbox_inches="tight")
        path = out / f"{stem}.{fmt}"
        atomic_write_bytes(path, buf.getvalue())
        paths.append(path)
    plt.close(fig)
    return paths


def normalization_references(envs: list[str]) -> dict[str, tuple[float, float]]:
    """(random, best reference) per environment that has both (Bayes-optimal before oracle)."""
    refs = {}
    for env in envs:
        known = ENVIRONMENTS[env].reference_returns if env in ENVIRONMENTS else {}
        high = known.get("Bayes-optimal", known.get("oracle"))
        if "random" in known and high is not None:
            refs[env] = (known["random"], high)
    return refs


_TUNED_NOTE = (" (a method run at several state embeddings is shown at its best pair of state embedding and "
               "learning rate, as the paper tuned the state embedding for Figure 9; every pair is listed under "
               "'Every learning rate')")


def tuned_state_embed(df: pd.DataFrame) -> bool:
    """Whether some (env, method) has runs of several policy state-embedding sizes (a
    `--state-embeds` sweep): the size is then chosen with the lr and shown next to it."""
    return "state_embed" in df.columns and bool((df.groupby(["env", "method"])["state_embed"].nunique() > 1).any())


def plot_curves(best: pd.DataFrame, y: str, ylabel: str, x: str, colors: dict[str, str],
                references: bool, tuned: bool = False) -> plt.Figure:
    """One panel per environment, one line per method (at its best lr) with its CI band."""
    envs = sorted(best["env"].unique())
    fig, axes = plt.subplots(1, len(envs), figsize=(5.2 * len(envs), 3.8), squeeze=False)
    for ax, env in zip(axes[0], envs, strict=True):
        for method, group in best[best["env"] == env].groupby("method", sort=False):
            group = group.dropna(subset=[y])
            if group.empty:  # e.g. a method trained without --grad-info
                continue
            curve = stats.curve_ci(group, x=x, y=y)
            raw = group.pivot_table(index=x, columns="seed", values=y).dropna()  # the x every seed has
            ax.plot(raw.index, raw.mean(axis=1), color=colors[method], alpha=0.3, lw=0.7)  # the evaluations, faint
            lr = group["lr"].iloc[0]
            size = f", state {int(group['state_embed'].iloc[0])}" if tuned else ""
            ax.plot(curve[x], curve["mean"], color=colors[method],
                    label=f"{_label(method)} (lr {lr:g}{size}, {seeds_text(int(curve['seeds'].max()))})")
            ax.fill_between(curve[x], curve["low"], curve["high"], color=colors[method], alpha=0.2, lw=0)
        if references and env in ENVIRONMENTS:
            for i, (name, value) in enumerate(ENVIRONMENTS[env].reference_returns.items()):
                ax.axhline(value, ls="--", lw=1, color=f"C{7 + i % 3}", label=f"{name} ({value:g})")
        ax.set_title(env)
        ax.set_xlabel(x)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_bars(scores: dict[str, pd.DataFrame], colors: dict[str, str]) -> plt.Figure:
    """Final and average return per environment and method, with 68% CIs."""
    envs = sorted(next(iter(scores.values()))["env"].unique())
    fig, axes = plt.subplots(len(scores), len(envs), figsize=(4.2 * len(envs), 3.2 * len(scores)), squeeze=False)
    for row, (name, table) in enumerate(scores.items()):
        for ax, env in zip(axes[row], envs, strict=True):
            t = table[table["env"] == env]
            pos = np.arange(len(t))
            err = np.vstack([t["mean"] - t["low"], t["high"] - t["mean"]])
            ax.bar(pos, t["mean"], yerr=err, color=[colors[m] for m in t["method"]], capsize=4)
            ax.set_xticks(pos, [_label(m) for m in t["method"]], rotation=30, ha="right", fontsize=8)
            ax.set_title(f"{env}: {name} return")
    fig.tight_layout()
    return fig


def _fmt(mean: float, low: float, high: float) -> str:
    return f"{mean:.2f} [{low:.2f}, {high:.2f}]"


def markdown_table(best_lr: pd.DataFrame, final: pd.DataFrame, average: pd.DataFrame, frames: pd.Series,
                   tuned: bool = False) -> str:
    """Per environment and method: best lr (and state embedding when tuned), seeds, frames, final
    and average return with 68% CIs."""
    size_head, size_rule = (" state embedding |", "---|") if tuned else ("", "")
    lines = [f"| environment | method | best lr |{size_head} seeds | frames | final return (68% CI) | "
             "average return (68% CI) |", f"|---|---|---|{size_rule}---|---|---|---|"]
    for _, b in best_lr.iterrows():
        f, a = (t[(t["env"] == b["env"]) & (t["method"] == b["method"])].iloc[0] for t in (final, average))
        size = f" {int(b['state_embed'])} |" if tuned else ""
        lines.append(f"| {b['env']} | {_label(b['method'])} | {b['lr']:g} |{size} {int(f['seeds'])} | "
                     f"{int(frames[(b['env'], b['method'])]):,} | {_fmt(f['mean'], f['low'], f['high'])} | "
                     f"{_fmt(a['mean'], a['low'], a['high'])} |")
    return "\n".join(lines) + "\n"


def diverged_section(diverged: pd.DataFrame, tuned: bool = False) -> list[str]:
    """Markdown lines listing every diverged run (none if there is none); `tuned`: the report
    is tuned over the state embedding, so each run's size is named."""
    if diverged.empty:
        return []
    lines = ["## Diverged runs", "",
             f"{len(diverged)} run(s) became non-finite (losses or parameters) during training; their returns are not "
             "a learning result. A learning rate with a diverged run in any seed is not eligible as the best learning "
             "rate (returns are averaged over seeds, and dropping only the diverged seed would favour unstable "
             "learning rates), so the figures, the best-lr table and the aggregates below hold no diverged run. "
             "`update` is the end of the evaluation interval in which the run was first seen non-finite.", "",
             "| environment | method | lr | seed | update | frames |", "|---|---|---|---|---|---|"]
    size = lambda r: f" (state embedding {int(r['state_embed'])})" if tuned else ""  # noqa: E731
    lines += [f"| {r['env']} | {_label(r['method'])}{size(r)} | {r['lr']:g} | {int(r['seed'])} | {int(r['update']):,} | "
              f"{int(r['frames']):,} |" for _, r in diverged.iterrows()]
    return [*lines, ""]


def _frames(value: float) -> str:
    return f"{int(value):,}" if np.isfinite(value) else "not reached"


def reach_section(best: pd.DataFrame, thresholds: tuple[float, ...], tuned: bool = False) -> list[str]:
    """Markdown lines: the frames at which each method (at its best lr) first reaches each return
    in `thresholds` (none if no threshold is given)."""
    if not thresholds:
        return []
    size_head, size_rule = (" state embedding |", "---|") if tuned else ("", "")
    lines = ["## Frames to reach a return", "",
             "Sample efficiency at the best learning rate: the first frames at which the smoothed curve (the figures' "
             "smoothing) reaches the return; `mean curve`: the mean over seeds (the curve the figure draws), `each seed`: "
             "every seed's own curve, by seed. Within the frames this report covers.", "",
             f"| environment | method | lr |{size_head} return | mean curve | seeds reaching it | each seed |",
             f"|---|---|---|{size_rule}---|---|---|---|"]
    for threshold in thresholds:
        for _, r in stats.frames_to_reach(best, threshold).iterrows():
            size = f" {int(r['state_embed'])} |" if tuned else ""
            lines.append(f"| {r['env']} | {_label(r['method'])} | {r['lr']:g} |{size} {threshold:g} | "
                         f"{_frames(r['mean_curve'])} | {r['reached']} of {r['seeds']} | "
                         f"{', '.join(_frames(v) for v in r['per_seed'])} |")
    return [*lines, ""]


def _divergence_note(diverged: pd.DataFrame, row: pd.Series, runs: int) -> str:
    """'' or 'k of n seeds (seed S at update U, ...); not eligible' for one configuration
    (env, method, lr and the state embedding where the report is tuned over it)."""
    keys = [k for k in stats.group_keys(diverged) if k in row.index]
    d = diverged[(diverged[keys] == row[keys]).all(axis=1)] if len(diverged) else diverged
    if d.empty:
        return ""
    where = ", ".join(f"seed {int(r['seed'])} at update {int(r['update']):,}" for _, r in d.iterrows())
    return f"{len(d)} of {runs} seeds ({where}); not eligible"


def aggregate_section(best: pd.DataFrame) -> tuple[str, plt.Figure | None]:
    """rliable statistics of normalized final returns across environments (markdown, figure)."""
    scores = stats.run_scores(best, "final")
    refs = normalization_references(sorted(scores["env"].unique()))
    normalized = stats.normalized_scores(scores, refs)
    try:
        table, improvement = stats.aggregate(normalized)
    except ValueError as e:
        return f"Aggregate statistics skipped: {e}\n", None
    envs = sorted(scores["env"].unique())
    how = ", ".join(f"{e}: (return - ({refs[e][0]:g})) / ({refs[e][1]:g} - ({refs[e][0]:g}))" if e in refs
                    else f"{e}: min-max over all runs" for e in envs)
    lines = [f"Final returns normalized per environment ({how}); 95% stratified bootstrap CIs (rliable).", "",
             "| method | statistic | value | 95% CI |", "|---|---|---|---|"]
    for _, r in table.iterrows():
        lines.append(f"| {_label(r['method'])} | {r['statistic']} | {r['value']:.3f} | [{r['low']:.3f}, {r['high']:.3f}] |")
    lines += ["", "| P(X > Y) | Y | probability | 95% CI |", "|---|---|---|---|"]
    for _, r in improvement.iterrows():
        lines.append(f"| {_label(r['x'])} | {_label(r['y'])} | {r['probability']:.3f} | [{r['low']:.3f}, {r['high']:.3f}] |")
    statistics = list(dict.fromkeys(table["statistic"]))
    fig, axes = plt.subplots(1, len(statistics), figsize=(3.2 * len(statistics), 1.2 + 0.5 * table["method"].nunique()),
                             squeeze=False)
    for ax, name in zip(axes[0], statistics, strict=True):
        t = table[table["statistic"] == name]
        pos = np.arange(len(t))
        ax.errorbar(t["value"], pos, xerr=np.vstack([t["value"] - t["low"], t["high"] - t["value"]]), fmt="o", capsize=4)
        ax.set_yticks(pos, [_label(m) for m in t["method"]])
        ax.set_title(name)
    fig.tight_layout()
    return "\n".join(lines) + "\n", fig


def write_report(paths: list[Path], out: Path, metric: str = "average", title: str | None = None,
                 reach: tuple[float, ...] = ()) -> list[Path]:
    """Write the report of every run below `paths` into `out`; returns the files written.
    `reach`: returns whose first frames (sample efficiency) the report tabulates."""
    if metric not in stats.METRICS:
        raise UsageError(f"--metric {metric!r}: choose one of {', '.join(stats.METRICS)}")
    bad = [r for r in reach if not np.isfinite(r)]
    if bad:
        raise UsageError(f"--reach {bad[0]}: give finite returns (e.g. --reach 30)")
    df, cut = common_budget(load_runs(paths))
    diverged = stats.diverged_runs(df)
    best_lr = stats.best_lrs(df, metric)  # lrs with a diverged run are not eligible
    if best_lr.empty:
        listed = ", ".join(f"{m} on {e} lr={lr:g} seed={int(sd)}" for e, m, lr, sd in
                           diverged[["env", "method", "lr", "seed"]].itertuples(index=False))
        raise UsageError(f"every learning rate diverged in at least one seed, nothing to compare (diverged: {listed})")
    out.mkdir(parents=True, exist_ok=True)
    best = stats.select_best(df, metric)
    methods = list(dict.fromkeys(best_lr["method"]))
    colors = _colors(methods)
    files: list[Path] = []

    tuned = tuned_state_embed(df)
    files += _save(plot_curves(best, "meta_episode_return", "meta-episode return", "frames", colors, True, tuned),
                   out, "curves")
    final = stats.final_scores_ci(best, "final")
    average = stats.final_scores_ci(best, "average")
    files += _save(plot_bars({"final": final, "average": average}, colors), out, "bars")
    if all(c in df.columns for c in GRAD_COLUMNS) and best[list(GRAD_COLUMNS)].notna().any().all():
        for column, label in GRAD_COLUMNS.items():
            files += _save(plot_curves(best, column, label, "update", colors, False, tuned), out,
                           column.replace("_norm", "s"))

    frames = best.groupby(["env", "method"])["frames"].max()
    run_scores = stats.run_scores(df, metric)
    sweep = run_scores.groupby(stats.group_keys(run_scores))["score"].agg(["mean", "count"]).reset_index()
    text = [f"# {title or 'hypermeta report'}", "",
            f"Runs: {df.groupby(stats.run_keys(df)).ngroups} from {df['run_dir'].nunique()} run directories. "
            f"Best learning rate{' and state embedding' if tuned else ''} by the `{metric}` return"
            f"{_TUNED_NOTE if tuned else ''}; returns are meta-episode returns of deterministic evaluations.", "",
            *([f"Cut to a common budget so that methods compare on equal frames: "
               f"{', '.join(f'{env} at {b:,} frames' for env, b in cut.items())}.", ""] if cut else []),
            *([f"Unfinished runs (no summary.json) are included up to their last evaluation: "
               f"{', '.join(sorted(df.loc[~df['finished'], 'run_dir'].unique()))}.", ""] if (~df["finished"]).any() else []),
            *diverged_section(diverged, tuned),
            "## Final and average return at the best learning rate", "",
            markdown_table(best_lr, final, average, frames, tuned),
            *reach_section(best, tuple(reach), tuned),
            *[f"{_label(m)} on {e}: every learning rate diverged in at least one seed; no best learning rate.\n"
              for e, m in sorted(set(map(tuple, df[["env", "method"]].drop_duplicates().to_numpy())) -
                                 set(map(tuple, best_lr[["env", "method"]].to_numpy())))],
            "## Every learning rate", "", f"Mean over seeds of each run's `{metric}` return (the selection criterion); "
            "a learning rate with a diverged run is flagged and not eligible.", "",
            f"| environment | method | lr |{' state embedding |' if tuned else ''} runs | score | diverged |",
            f"|---|---|---|{'---|' if tuned else ''}---|---|---|"]
    text += [f"| {r['env']} | {_label(r['method'])} | {r['lr']:g} |{f' {int(r.state_embed)} |' if tuned else ''} "
             f"{int(r['count'])} | {r['mean']:.2f} | "
             f"{_divergence_note(diverged, r, int(r['count']))} |"
             for _, r in sweep.iterrows()]
    agg_text, agg_fig = aggregate_section(best)
    text += ["", "## Aggregate across environments", "", agg_text]
    from hypermeta.evaluation import eval_section  # per-episode returns of `hypermeta eval`, where run

    text += eval_section([Path(d) for d in df["run_dir"].unique()])
    if agg_fig is not None:
        files += _save(agg_fig, out, "aggregate")
    report = out / "report.md"
    atomic_write_bytes(report, "\n".join(text).encode())
    if not diverged.empty:  # one line on the terminal too: these runs are not learning results
        listed = ", ".join(f"{_label(m)} on {e} lr {lr:g} seed {int(sd)} at update {int(u)}" for e, m, lr, sd, u in
                           diverged[["env", "method", "lr", "seed", "update"]].itertuples(index=False))
        print(f"{len(diverged)} diverged run(s), flagged in {report} and not eligible as best lr: {listed}")
    scores = out / "scores.csv"
    atomic_write_bytes(scores, run_scores.to_csv(index=False).encode())
    return [report, scores, *files]
