"""curve.png of a run directory: per learning rate, the mean over seeds of the raw evaluations
(faint) and of the seeds' smoothed curves (the paper's smoothing, `analysis.smoothing`), with
the smoothed curves' standard-error band. One evaluation of 16 trials swings by several points
of return; the smoothed line shows the trend, the faint one what was measured.

Evaluations of a run marked diverged (metrics.csv `diverged` = 1) are left out: a learning
rate's curve ends where one of its seeds diverged, and its legend entry says so."""

from __future__ import annotations

from collections import defaultdict

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt
import numpy as np

from hypermeta.analysis.smoothing import smooth
from hypermeta.config import TrainConfig
from hypermeta.envs.registry import env_spec
from hypermeta.methods.registry import paper_label, run_label
from hypermeta.rundir import RunDir, atomic_write_bytes


def seeds_text(n: int) -> str:
    """'1 seed', '3 seeds': a legend's count of seeds."""
    return f"{n} seed{'' if n == 1 else 's'}"


def _diverged(row: dict) -> bool:
    return row.get("diverged") not in (None, "", "0")


def _divergence(rows: list[dict]) -> dict[float, str]:
    """lr -> ' (seed S diverged at update U, ...)' for the lrs with a diverged seed."""
    first: dict[float, dict[int, int]] = defaultdict(dict)
    for r in rows:
        if _diverged(r):
            seeds = first[float(r["lr"])]
            seeds[int(r["seed"])] = min(seeds.get(int(r["seed"]), int(r["update"])), int(r["update"]))
    return {lr: " (" + ", ".join(f"seed {s} diverged at update {u}" for s, u in sorted(seeds.items())) + ")"
            for lr, seeds in first.items()}


def _curves(rows: list[dict], column: str) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """lr -> (frames, values of `column` per seed), truncated to the shortest seed.

    Rows of diverged runs are dropped, so an lr's curve ends where a seed diverged (an lr
    whose seed diverged at its first evaluation has an empty curve)."""
    by_lr: dict[float, dict[int, list[tuple[int, float]]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        seeds = by_lr[float(r["lr"])]
        seeds.setdefault(int(r["seed"]), [])
        if not _diverged(r):
            seeds[int(r["seed"])].append((int(r["frames"]), float(r[column])))
    out = {}
    for lr, by_seed in sorted(by_lr.items()):
        length = min(len(v) for v in by_seed.values())
        frames = np.array([f for f, _ in sorted(next(iter(by_seed.values())))[:length]])
        out[lr] = frames, np.array([[y for _, y in sorted(v)[:length]] for v in by_seed.values()])
    return out


def _draw(ax, curves: dict[float, tuple[np.ndarray, np.ndarray]], style: str, suffix: str,
          diverged: dict[float, str] | None = None) -> None:
    """Per lr (colour by lr): the raw mean over seeds (faint), the mean of the seeds' smoothed
    curves (labelled) and its standard-error band."""
    diverged = diverged or {}
    for i, (lr, (frames, values)) in enumerate(curves.items()):
        label = f"lr {lr:g} ({seeds_text(len(values))}){suffix}{diverged.get(lr, '')}"
        if values.shape[1] == 0:  # every point of this lr is past a divergence: a legend entry only
            ax.plot([], [], style, color=f"C{i}", label=label)
            continue
        ax.plot(frames, values.mean(axis=0), style, color=f"C{i}", alpha=0.3, lw=0.7)
        smoothed = np.stack([smooth(v) for v in values])
        mean = smoothed.mean(axis=0)
        sem = smoothed.std(axis=0, ddof=1) / np.sqrt(len(values)) if len(values) > 1 else np.zeros_like(mean)
        ax.plot(frames, mean, style, color=f"C{i}", label=label)
        ax.fill_between(frames, mean - sem, mean + sem, color=f"C{i}", alpha=0.2, lw=0)


def plot_run(run: RunDir, cfg: TrainConfig) -> None:
    """Write the run's curve.png (`run_figure` of its metrics.csv)."""
    fig = run_figure(run.read_metrics(), cfg)
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(run.curve_path, buf.getvalue())


def run_figure(rows: list[dict], cfg: TrainConfig) -> plt.Figure:
    """Meta-episode return against frames, one line per lr, reference returns as dashed lines.

    Environments with a test task set (ML10) add its return as dashed lines, and those that
    report success a second panel with the success rates."""
    has_test = bool(rows) and "test_meta_episode_return" in rows[0]
    has_success = bool(rows) and "success_rate" in rows[0]
    fig, axes = plt.subplots(1, 2 if has_success else 1, figsize=(11.5 if has_success else 6.4, 4.2), squeeze=False)
    ax = axes[0, 0]
    _draw(ax, _curves(rows, "meta_episode_return"), "-", " train tasks" if has_test else "", _divergence(rows))
    if has_test:
        _draw(ax, _curves(rows, "test_meta_episode_return"), "--", " test tasks")
    if has_success:
        _draw(axes[0, 1], _curves(rows, "success_rate"), "-", " train tasks" if has_test else "")
        if has_test:
            _draw(axes[0, 1], _curves(rows, "test_success_rate"), "--", " test tasks")
        axes[0, 1].set_xlabel("frames")
        axes[0, 1].set_ylabel("success rate (any step of an episode)")
        axes[0, 1].legend(fontsize=8)
    for i, (name, value) in enumerate(env_spec(cfg.env).reference_returns.items()):
        ax.axhline(value, ls="--", lw=1, color=f"C{7 + i % 3}", label=f"{name} {value:g}")
    ax.set_xlabel("frames")
    ax.set_ylabel("meta-episode return")
    ax.set_title(f"{paper_label(run_label(cfg.method, cfg.model.sequence))} on {cfg.env}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
