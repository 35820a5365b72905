"""The paper's figures as named sweeps: `hypermeta reproduce NAME`.

Each preset says which environments and methods a figure compares, the frame budget
per run on each of its environments (the environment family's, as in the paper), and
how long the full protocol (5 learning rates x 3 seeds per method and environment)
takes on the machines we measured (`benchmarks/throughput.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

from hypermeta.envs.registry import ENVIRONMENTS
from hypermeta.errors import UsageError
from hypermeta.families import family_defaults
from hypermeta.methods.registry import METHODS
from hypermeta.sweeps.sweep import SWEEP_LRS, SWEEP_SEEDS

GRID_WORLDS = ("grid-world", "grid-world-show", "grid-world-dense")

# Frames per second, summed over runs, measured with benchmarks/throughput.py at the
# paper's Grid-World sizes: a 2-core CPU (runs one after another; auto parallel_runs)
# and one H100 with all 15 runs of a sweep vmapped. Methods not measured yet use the
# slowest measured figure. RNN, RNN+HN and VI+HN on the CPU were re-measured on 2026-12-03
# (docs/results/cpu-speed/README.md, "Measured: speed on a CPU": one run is no longer vmapped, the replay's GRU
# has its own backward pass); RNN+S and Kaiming take RNN's and RNN+HN's figures; the other
# methods' CPU figures predate those changes (each is faster now: conservative), and the
# GPU's were measured before the reference's PPO minibatches.
MEASURED_FPS = {
    "cpu": {"rnn": 9_800, "rnn-s": 9_800, "rnn-hn": 3_900, "rnn-hn-kaiming": 3_900,
            "vi": 5_400, "vi-hn": 2_480, "ti-naive": 6_160, "ti": 5_300, "ti-pp": 6_180, "ti-hn": 1_160,
            "ti-pp-hn": 1_210, "bi-pp-hn": 930, "multi-hn": 1_600, "rnn-hn-ti": 1_330, "rnn-hn-bi": 1_150,
            "rnn-s-ti": 6_410},
    "gpu": {"rnn": 260_000, "rnn-s": 260_000, "rnn-hn": 170_000, "rnn-hn-kaiming": 170_000},
}

# The MuJoCo tasks and ML10 train slower (physics in every step): their own figures, 2-core
# CPU, benchmarks/throughput.py, one run. MuJoCo with C physics (the CPU default; 2026-12-03;
# cheetah-dir's stands for both Cheetahs, the slower of the two for RNN+HN); ML10 with its 20
# evaluation trials every 5 updates, so conservative. Not measured on a GPU yet: those figures
# have no GPU estimate.
_CHEETAH_CPU, _ANT_CPU = {"rnn": 3_480, "rnn-hn": 1_480}, {"rnn": 2_160, "rnn-hn": 1_770}
ENV_FPS = {
    "cpu": {"cheetah-dir": _CHEETAH_CPU, "cheetah-vel": _CHEETAH_CPU, "ant-dir": _ANT_CPU, "ant-dir-angle": _ANT_CPU,
            "walker-params": {"rnn": 2_200, "rnn-hn": 1_040}, "ml10": {"rnn": 490, "rnn-hn": 300, "vi-hn": 280}},
    "gpu": {},
}


@dataclass(frozen=True)
class Figure:
    """One figure of the paper as a set of sweeps."""

    name: str
    caption: str
    envs: tuple[str, ...]
    methods: tuple[str, ...]
    frames: int | None = None
    """Frames per run on every environment; None (the paper's figures): each environment's own
    budget, its family's `TrainConfig.frames` (4M on grid-worlds, 75M on MuJoCo, ...)."""
    grad_info: bool = False
    note: str = ""
    seeds: tuple[int, ...] = SWEEP_SEEDS
    """The paper's seeds for this figure (MC-LS adds a fourth)."""
    state_embed: int | None = None
    """Policy state embedding of every method; None: each method's default on the environment
    (25 for the end-to-end methods on grid-worlds, 256 otherwise)."""

    def missing(self) -> list[str]:
        """Environments and methods of this figure that are not implemented yet."""
        return [e for e in self.envs if e not in ENVIRONMENTS] + [m for m in self.methods if m not in METHODS]

    def budget(self, env: str) -> int:
        """Frames per run on `env` in the paper."""
        return self.frames if self.frames is not None else family_defaults(env).frames

    def budgets(self) -> dict[str, int]:
        """{env: frames per run} of the implemented environments."""
        return {env: self.budget(env) for env in self.envs if env in ENVIRONMENTS}

    def state_embeds(self) -> tuple[int, ...] | None:
        """The sweep's `state_embeds` for this figure."""
        return None if self.state_embed is None else (self.state_embed,)

    def _configs(self, method: str, state_embeds: int) -> int:
        """Configurations per lr x seed: one per state-embedding size if the policy reads the state."""
        return state_embeds if method in METHODS and METHODS[method].reads_state else 1

    def runs(self, lrs: int = len(SWEEP_LRS), seeds: int | None = None, state_embeds: int = 1) -> int:
        seeds = len(self.seeds) if seeds is None else seeds
        return len(self.envs) * sum(self._configs(m, state_embeds) for m in self.methods) * lrs * seeds

    def hours(self, device: str, frames: int | None = None, lrs: int = len(SWEEP_LRS),
              seeds: int | None = None, envs: tuple[str, ...] | None = None, state_embeds: int = 1) -> float | None:
        """Expected wall-clock hours of the protocol on `device` ('cpu' or 'gpu'), for all of
        the figure's environments or `envs`, each at its own budget unless `frames` is given,
        with `state_embeds` sizes per method that reads the state; None where an environment
        was not measured there."""
        seeds = len(self.seeds) if seeds is None else seeds
        total = 0.0
        for env in self.envs if envs is None else envs:
            fps = ENV_FPS[device].get(env) if env in ENV_FPS["cpu"] else MEASURED_FPS[device]
            if fps is None:
                return None
            slowest = min(fps.values())  # methods not measured: the slowest measured figure
            budget = frames or self.budget(env)
            total += sum(self._configs(m, state_embeds) * lrs * seeds * budget / fps.get(m, slowest)
                         for m in self.methods)
        return total / 3600


def _count(frames: int) -> str:
    return f"{frames / 1e6:g}M" if frames % 100_000 == 0 else f"{frames:,}"


def format_frames(budgets: dict[str, int]) -> str:
    """'4M frames', or per environment when they differ: 'grid-world 4M, walker-params 75M frames'."""
    if not budgets:
        return "? frames"
    if len(set(budgets.values())) == 1:
        return f"{_count(next(iter(budgets.values())))} frames"
    return ", ".join(f"{env} {_count(frames)}" for env, frames in budgets.items()) + " frames"


def format_hours(hours: float | None, where: str) -> str:
    """'about N h on WHERE', or that it was not measured there."""
    if hours is None:
        return f"not measured on {where}"
    digits = 2 if hours < 1 else 1 if hours < 10 else 0
    return f"about {hours:,.{digits}f} h on {where}"


# Budgets: each environment's own (`Figure.budget`: its family's frames, the authors'
# experiment_sets/all_envs.py num_frames): 4M on the grid-worlds, 75M on the MuJoCo tasks, 60M on
# MC-LS, 100M on ML10. Policy state embedding: fig5 and fig15 use 256 for every method (the
# authors' Grid set trains RNN_HN at the "XL" size, all_envs.py l.14-47; the paper's appendix 8.2
# makes 256 the rule, its exception being the RNN / RNN+S / RNN+HN comparison, i.e. fig9).
FIGURES: dict[str, Figure] = {f.name: f for f in [
    Figure("fig5", "Grid-worlds: RNN+HN against the task-inference baselines", GRID_WORLDS,
           ("rnn-hn", "ti-pp-hn", "ti", "ti-naive", "vi-hn"), state_embed=256),
    Figure("fig6", "MuJoCo: RNN+HN against the task-inference baselines",
           ("cheetah-dir", "cheetah-vel", "ant-dir", "walker-params"),
           ("rnn-hn", "ti-pp-hn", "ti", "ti-naive", "vi-hn")),
    Figure("fig7", "MC-LS: RNN+HN against VI+HN", ("mc-ls",), ("rnn-hn", "vi-hn"), seeds=(73, 20, 3, 99)),
    Figure("fig9", "Grid-worlds: RNN, RNN+S and RNN+HN", GRID_WORLDS, ("rnn", "rnn-s", "rnn-hn"),
           note="Policy state embedding 25 for RNN+S and RNN+HN, the size the paper tuned over "
                "--state-embeds 5 25 125 625 (RNN has none)."),
    Figure("fig10", "MuJoCo: RNN, RNN+S and RNN+HN", ("cheetah-dir", "cheetah-vel", "ant-dir", "walker-params"),
           ("rnn", "rnn-s", "rnn-hn")),
    Figure("fig11", "Latent-gradient analysis: returns and gradient norms", ("grid-world",),
           ("rnn", "rnn-s", "rnn-hn", "rnn-hn-kaiming"), grad_info=True,
           note="The paper measures this on walker-params (30M frames): hypermeta sweep --env walker-params "
                "--methods rnn rnn-s rnn-hn rnn-hn-kaiming --frames 30000000 --grad-info."),
    Figure("fig12", "Choice of task-inference baselines", ("grid-world", "walker-params"),
           ("ti-naive", "ti", "ti-pp", "ti-hn", "ti-pp-hn", "bi-pp-hn")),
    Figure("fig15", "End-to-end and task-inference objectives together", ("grid-world",),
           ("rnn-hn", "rnn-hn-ti", "rnn-hn-bi", "rnn-s-ti", "ti-pp-hn"), state_embed=256,
           note="aux weight: --inference.aux-weight (the paper tries 0.1 and 0.5)."),
    Figure("fig16", "Meta-World ML10: RNN+HN against VI+HN", ("ml10",), ("rnn-hn", "vi-hn")),
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
    """One line: what the figure trains, its budgets and its expected duration."""
    status = "ready" if not figure.missing() else f"needs {', '.join(figure.missing())}"
    line = (f"{figure.name}: {figure.caption}. {', '.join(figure.envs)} x {', '.join(figure.methods)}; "
            f"{format_frames(figure.budgets())} x {figure.runs()} runs")
    if figure.state_embed is not None:
        line += f"; policy state embedding {figure.state_embed}"
    if not figure.missing():
        line += f"; {format_hours(figure.hours('cpu'), 'a 2-core CPU')}, {format_hours(figure.hours('gpu'), 'one H100')}"
    return f"{line} [{status}]" + (f" {figure.note}" if figure.note else "")
