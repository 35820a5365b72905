"""The paper's figures as named sweeps: `hypermeta reproduce NAME`.

Each preset says which environments and methods a figure compares, its frame budget
per run, and how long the full protocol (5 learning rates x 3 seeds per method and
environment) takes on the machines we measured (`benchmarks/throughput.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

from hypermeta.envs.registry import ENVIRONMENTS
from hypermeta.errors import UsageError
from hypermeta.methods.registry import METHODS
from hypermeta.sweep import SWEEP_LRS, SWEEP_SEEDS

GRID_WORLDS = ("grid-world", "grid-world-show", "grid-world-dense")

# Frames per second, summed over runs, measured with benchmarks/throughput.py at the
# paper's Grid-World sizes: a 2-core CPU (runs one after another; auto parallel_runs)
# and one H100 with all 15 runs of a sweep vmapped. Methods not measured yet use the
# slowest measured figure.
MEASURED_FPS = {
    "cpu": {"rnn": 6_200, "rnn-s": 7_200, "rnn-hn": 1_200, "rnn-hn-kaiming": 1_200,
            "vi": 5_400, "vi-hn": 1_200, "ti-naive": 6_160, "ti": 5_300, "ti-pp": 6_180, "ti-hn": 1_160,
            "ti-pp-hn": 1_210, "bi-pp-hn": 930, "multi-hn": 1_600, "rnn-hn-ti": 1_330, "rnn-hn-bi": 1_150,
            "rnn-s-ti": 6_410},
    "gpu": {"rnn": 260_000, "rnn-s": 260_000, "rnn-hn": 170_000, "rnn-hn-kaiming": 170_000},
}

# The MuJoCo tasks and ML10 train slower (physics in every step): their own figures, 2-core
# CPU, benchmarks/throughput.py, one run (cheetah-vel stands for both Cheetahs; ML10 with its
# 20 evaluation trials every 5 updates, so conservative). Not measured on a GPU yet: those
# figures have no GPU estimate.
_CHEETAH_CPU, _ANT_CPU = {"rnn": 1_980, "rnn-hn": 800}, {"rnn": 170, "rnn-hn": 120}
ENV_FPS = {
    "cpu": {"cheetah-dir": _CHEETAH_CPU, "cheetah-vel": _CHEETAH_CPU, "ant-dir": _ANT_CPU, "ant-dir-angle": _ANT_CPU,
            "walker-params": {"rnn": 580, "rnn-hn": 420}, "ml10": {"rnn": 490, "rnn-hn": 300, "vi-hn": 280}},
    "gpu": {},
}


@dataclass(frozen=True)
class Figure:
    """One figure of the paper as a set of sweeps."""

    name: str
    caption: str
    envs: tuple[str, ...]
    methods: tuple[str, ...]
    frames: int
    """Frames per run in the paper."""
    grad_info: bool = False
    note: str = ""
    seeds: tuple[int, ...] = SWEEP_SEEDS
    """The paper's seeds for this figure (MC-LS adds a fourth)."""

    def missing(self) -> list[str]:
        """Environments and methods of this figure that are not implemented yet."""
        return [e for e in self.envs if e not in ENVIRONMENTS] + [m for m in self.methods if m not in METHODS]

    def runs(self, lrs: int = len(SWEEP_LRS), seeds: int | None = None) -> int:
        return len(self.envs) * len(self.methods) * lrs * (len(self.seeds) if seeds is None else seeds)

    def hours(self, device: str, frames: int | None = None, lrs: int = len(SWEEP_LRS),
              seeds: int | None = None, envs: tuple[str, ...] | None = None) -> float | None:
        """Expected wall-clock hours of the protocol on `device` ('cpu' or 'gpu'), for all of
        the figure's environments or `envs`; None where an environment was not measured there."""
        seeds = len(self.seeds) if seeds is None else seeds
        total = 0.0
        for env in self.envs if envs is None else envs:
            fps = ENV_FPS[device].get(env) if env in ENV_FPS["cpu"] else MEASURED_FPS[device]
            if fps is None:
                return None
            slowest = min(fps.values())  # methods not measured: the slowest measured figure
            total += sum(lrs * seeds * (frames or self.frames) / fps.get(m, slowest) for m in self.methods)
        return total / 3600


def format_hours(hours: float | None, where: str) -> str:
    """'about N h on WHERE', or that it was not measured there."""
    if hours is None:
        return f"not measured on {where}"
    digits = 2 if hours < 1 else 1 if hours < 10 else 0
    return f"about {hours:,.{digits}f} h on {where}"


FIGURES: dict[str, Figure] = {f.name: f for f in [
    Figure("fig5", "Grid-worlds: RNN+HN against the task-inference baselines", GRID_WORLDS,
           ("rnn-hn", "ti-pp-hn", "ti", "ti-naive", "vi-hn"), 4_000_000),
    Figure("fig6", "MuJoCo: RNN+HN against the task-inference baselines",
           ("cheetah-dir", "cheetah-vel", "ant-dir", "walker-params"),
           ("rnn-hn", "ti-pp-hn", "ti", "ti-naive", "vi-hn"), 75_000_000),
    Figure("fig7", "MC-LS: RNN+HN against VI+HN", ("mc-ls",), ("rnn-hn", "vi-hn"), 60_000_000,
           seeds=(73, 20, 3, 99)),
    Figure("fig9", "Grid-worlds: RNN, RNN+S and RNN+HN", GRID_WORLDS, ("rnn", "rnn-s", "rnn-hn"), 4_000_000),
    Figure("fig10", "MuJoCo: RNN, RNN+S and RNN+HN", ("cheetah-dir", "cheetah-vel", "ant-dir", "walker-params"),
           ("rnn", "rnn-s", "rnn-hn"), 75_000_000),
    Figure("fig11", "Latent-gradient analysis: returns and gradient norms", ("grid-world",),
           ("rnn", "rnn-s", "rnn-hn", "rnn-hn-kaiming"), 4_000_000, grad_info=True,
           note="The paper measures this on walker-params (30M frames): hypermeta sweep --env walker-params --grad-info."),
    Figure("fig12", "Choice of task-inference baselines", ("grid-world", "walker-params"),
           ("ti-naive", "ti", "ti-pp", "ti-hn", "ti-pp-hn", "bi-pp-hn"), 4_000_000),
    Figure("fig15", "End-to-end and task-inference objectives together", ("grid-world",),
           ("rnn-hn", "rnn-hn-ti", "rnn-hn-bi", "rnn-s-ti", "ti-pp-hn"), 4_000_000,
           note="aux weight: --inference.aux-weight (the paper tries 0.1 and 0.5)."),
    Figure("fig16", "Meta-World ML10: RNN+HN against VI+HN", ("ml10",), ("rnn-hn", "vi-hn"), 100_000_000),
]}


def get_figure(name: str) -> Figure:
    """The preset `name`, or a UsageError listing the presets (and what a figure still lacks)."""
    if name not in FIGURES:
        raise UsageError(f"unknown figure {name!r}; choose one of: {', '.join(FIGURES)}")
    figure = FIGURES[name]
    missing = figure.missing()
    if missing:
        raise UsageError(
            f"{name} ({figure.caption}) needs {', '.join(missing)}, not implemented yet; "
            f"figures that run now: {', '.join(f.name for f in FIGURES.values() if not f.missing())}"
        )
    return figure


def describe(figure: Figure) -> str:
    """One line: what the figure trains, its budget and its expected duration."""
    status = "ready" if not figure.missing() else f"needs {', '.join(figure.missing())}"
    line = (f"{figure.name}: {figure.caption}. {', '.join(figure.envs)} x {', '.join(figure.methods)}; "
            f"{figure.frames / 1e6:g}M frames x {figure.runs()} runs")
    if not figure.missing():
        line += f"; {format_hours(figure.hours('cpu'), 'a 2-core CPU')}, {format_hours(figure.hours('gpu'), 'one H100')}"
    return f"{line} [{status}]" + (f" {figure.note}" if figure.note else "")
