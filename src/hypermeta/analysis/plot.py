"""curve.png of a run directory: mean over seeds per learning rate, with a standard-error band."""

from __future__ import annotations

from collections import defaultdict

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt
import numpy as np

from hypermeta.config import TrainConfig
from hypermeta.envs.registry import env_spec
from hypermeta.methods.registry import get_method
from hypermeta.rundir import RunDir, atomic_write_bytes


def plot_run(run: RunDir, cfg: TrainConfig) -> None:
    """Meta-episode return against frames, one line per lr, reference returns as dashed lines."""
    curves: dict[float, dict[int, list[tuple[int, float]]]] = defaultdict(lambda: defaultdict(list))
    for r in run.read_metrics():
        curves[float(r["lr"])][int(r["seed"])].append((int(r["frames"]), float(r["meta_episode_return"])))
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for lr, by_seed in sorted(curves.items()):
        length = min(len(v) for v in by_seed.values())
        frames = np.array([f for f, _ in sorted(next(iter(by_seed.values())))[:length]])
        values = np.array([[y for _, y in sorted(v)[:length]] for v in by_seed.values()])
        mean = values.mean(axis=0)
        sem = values.std(axis=0, ddof=1) / np.sqrt(len(values)) if len(values) > 1 else np.zeros_like(mean)
        ax.plot(frames, mean, label=f"lr {lr:g} ({len(values)} seeds)")
        ax.fill_between(frames, mean - sem, mean + sem, alpha=0.25)
    for i, (name, value) in enumerate(env_spec(cfg.env).reference_returns.items()):
        ax.axhline(value, ls="--", lw=1, color=f"C{7 + i % 3}", label=f"{name} {value:g}")
    ax.set_xlabel("frames")
    ax.set_ylabel("meta-episode return")
    ax.set_title(f"{get_method(cfg.method).paper_name} on {cfg.env}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(run.curve_path, buf.getvalue())
