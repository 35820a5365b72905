"""`hypermeta` command line (tyro): every TrainConfig field is an option.

Defaults come from the chosen environment's family and method, so `hypermeta train
--env X --method M --help` shows the paper's settings for M on X; with `--resume DIR`
they come from the run being resumed, and any option given must agree with it.

The commands parse options and print; what they do is the Python API's (`hypermeta.api`:
`train`, `sweep`, `evaluate`, `report`), one code path for both.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import tyro

from hypermeta import api
from hypermeta.config import EvalSettings, TrainConfig
from hypermeta.envs.registry import env_spec, environment_names
from hypermeta.errors import UsageError
from hypermeta.methods.registry import METHODS
from hypermeta.sweeps.cells import ClusterConfig
from hypermeta.sweeps.sweep import SWEEP_LRS, SweepConfig


@dataclass(frozen=True)
class CacheOption:
    """The option of every command that compiles (train, sweep, reproduce, eval)."""

    compile_cache: str | None = None
    """JAX's persistent compilation cache: a directory, or "off". A configuration compiled once
    starts in seconds in later processes (resumes, sweep cells, eval). Default:
    $HYPERMETA_COMPILE_CACHE, else $XDG_CACHE_HOME/hypermeta/jax or ~/.cache/hypermeta/jax.
    Results do not depend on it (hypermeta.compile_cache)."""


def _setup_compile_cache(args: CacheOption) -> None:
    """Before anything compiles; an unusable directory is one warning line, never an error."""
    from hypermeta.compile_cache import setup

    setup(args.compile_cache)


@dataclass(frozen=True)
class TrainArgs(TrainConfig, CacheOption):
    out: Path | None = None
    """Run directory to create (default: runs/ENV_METHOD_TIMESTAMP). Must not exist."""
    resume: Path | None = None
    """Continue the interrupted run in this directory from its last checkpoint."""


def _description() -> str:
    envs = ", ".join(environment_names())
    methods = ", ".join(f"{m.name} ({m.paper_name})" for m in METHODS.values())
    return (
        "Train a meta-RL method with recurrent PPO; every --seeds x --lr pair is one run, "
        f"all trained in one compiled program.\n\nEnvironments: {envs}\nMethods: {methods}"
    )


def _prescan(argv: list[str]) -> argparse.Namespace:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--env", default=None)
    pre.add_argument("--method", default=None)
    pre.add_argument("--resume", default=None)
    return pre.parse_known_args(argv)[0]


def _config_of(args: TrainArgs) -> TrainConfig:
    return TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})


def train_main(argv: list[str]) -> None:
    pre = _prescan(argv)
    if pre.resume is not None:
        base = api.resumable_config(pre.resume)  # a finished or missing run fails before tyro parses anything
    else:
        # The family's and the method's defaults (`hypermeta.configure` starts from the same), so
        # --help shows them; an unknown name is one clear line before tyro parses anything.
        base = api.defaults(pre.env or TrainConfig.env, pre.method or TrainConfig.method)
    default = TrainArgs(**{f.name: getattr(base, f.name) for f in dataclasses.fields(TrainConfig)})
    args = tyro.cli(TrainArgs, args=argv, default=default, description=_description(), prog="hypermeta train")
    out = args.out
    if pre.resume is not None:
        out = Path(pre.resume)
        if args.out is not None and args.out.resolve() != out.resolve():
            raise UsageError(f"--out {str(args.out)!r} with --resume {pre.resume!r}: a resumed run stays in its directory; drop --out")
    run = api.train(_config_of(args), out, resume=pre.resume is not None, compile_cache=args.compile_cache)
    print(f"done: {run.path}  (metrics.csv, curve.png, summary.json)")


@dataclass(frozen=True)
class SweepArgs(ClusterConfig, SweepConfig, CacheOption):
    out: Path = Path("runs/sweep")
    """Sweep directory: one run directory per method under OUT/ENV/. Running the same
    command again skips finished methods and resumes interrupted ones."""


def _cluster_of(args: ClusterConfig) -> ClusterConfig:
    return ClusterConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(ClusterConfig)})


def sweep_main(argv: list[str]) -> None:
    pre = _prescan(argv)
    if pre.env is not None:
        env_spec(pre.env)  # a clear error for an unknown name before tyro parses anything
    args = tyro.cli(SweepArgs, args=argv, prog="hypermeta sweep",
                    description="Train methods x learning rates x seeds on one environment (the paper's protocol).")
    settings = {f.name: getattr(args, f.name) for f in dataclasses.fields(SweepConfig) if f.name not in ("env", "methods")}
    cluster = _cluster_of(args) if args.ray is not None else None
    if cluster is not None:
        from hypermeta.sweeps.cluster import driver_on_cpu

        driver_on_cpu()  # this process only drives: the cells take the accelerators
    runs = api.sweep(args.env, args.methods, args.out, cluster=cluster, compile_cache=args.compile_cache, **settings)
    if cluster is not None:
        print(f"done: {len(runs)} cells in {args.out}; summarise with: hypermeta report {args.out}")
    else:
        print(f"done: {', '.join(str(r.path) for r in runs)}; summarise with: hypermeta report {args.out}")


@dataclass(frozen=True)
class ReproduceArgs(ClusterConfig, CacheOption):
    frames: int | None = None
    """Frames per run on every environment (default: the paper's budget of each environment:
    4M on grid-worlds, 75M on MuJoCo, 60M on MC-LS, 100M on ML10)."""
    lr: tuple[float, ...] = SWEEP_LRS
    """Policy learning rates."""
    seeds: tuple[int, ...] | None = None
    """Seeds (default: the figure's, 73 20 3; MC-LS adds 99)."""
    envs: tuple[str, ...] | None = None
    """Only these of the figure's environments (default: all of them)."""
    out: Path | None = None
    """Directory of the sweeps and the report (default: runs/FIGURE)."""
    parallel_runs: int = 0
    """Runs vmapped side by side (0 = auto: all on a GPU, 1 on a CPU)."""
    state_embeds: tuple[int, ...] | None = None
    """Policy state-embedding sizes to tune over, as `hypermeta sweep --state-embeds` (the paper
    tuned fig9's over 5 25 125 625; the report picks the best); default: the figure's."""


def reproduce_main(argv: list[str]) -> None:
    from hypermeta.sweeps.presets import FIGURES, describe, format_frames, format_hours, get_figure

    if not argv or argv[0].startswith("-"):
        if argv and argv[0] not in ("-h", "--help", "--list"):
            raise UsageError(f"hypermeta reproduce needs a figure first, e.g. 'hypermeta reproduce fig9'; got {argv[0]!r}")
        print("usage: hypermeta reproduce FIGURE [--frames N] [--lr ...] [--seeds ...] [--envs ...] "
              "[--state-embeds ...] [--out DIR] [--ray ADDRESS|auto|local] [--compile-cache PATH|off]\n")
        print("\n".join(describe(f) for f in FIGURES.values()))
        return
    figure = get_figure(argv[0])
    args = tyro.cli(ReproduceArgs, args=argv[1:], prog=f"hypermeta reproduce {figure.name}", description=describe(figure))
    if args.ray is not None:
        from hypermeta.sweeps.cluster import driver_on_cpu

        driver_on_cpu()  # this process only drives: the cells take the accelerators
    envs = figure.envs if args.envs is None else args.envs
    unknown = [e for e in envs if e not in figure.envs]
    if unknown:
        raise UsageError(f"--envs {', '.join(unknown)}: not in {figure.name}; choose from {', '.join(figure.envs)}")
    from hypermeta.analysis.report import write_report  # a missing 'report' extra fails here, before training

    if args.frames is not None and args.frames <= 0:
        raise UsageError(f"--frames must be positive, got {args.frames}")
    _setup_compile_cache(args)
    out = args.out or Path("runs") / figure.name
    seeds = figure.seeds if args.seeds is None else args.seeds
    frames = {env: figure.budget(env) if args.frames is None else args.frames for env in envs}
    state_embeds = figure.state_embeds() if args.state_embeds is None else args.state_embeds
    sizes = 1 if state_embeds is None else len(state_embeds)
    print(describe(figure))
    hours = {d: figure.hours(d, args.frames, len(args.lr), len(seeds), tuple(envs), sizes) for d in ("cpu", "gpu")}
    per_size = "" if state_embeds is None else f" x {sizes} state embeddings ({' '.join(map(str, state_embeds))})"
    print(f"this run: {', '.join(envs)}; {format_frames(frames)} x {len(args.lr)} lrs x {len(seeds)} seeds{per_size} "
          f"per method; {format_hours(hours['cpu'], 'a 2-core CPU')}, {format_hours(hours['gpu'], 'one H100')}")
    from hypermeta.sweeps.sweep import run_sweep

    sweeps = [SweepConfig(env=env, methods=figure.methods, lr=args.lr, seeds=seeds, frames=frames[env],
                          parallel_runs=args.parallel_runs, grad_info=figure.grad_info, state_embeds=state_embeds)
              for env in envs]
    if args.ray is not None:  # every environment's cells at once on the cluster (docs/cluster.md)
        from hypermeta.sweeps.cluster import run_cluster_sweeps

        run_cluster_sweeps(sweeps, out, _cluster_of(args))
    else:
        for sweep in sweeps:
            run_sweep(sweep, out)
    files = write_report([out], out / "report", title=f"{figure.name}: {figure.caption}")
    print(f"done: report in {out / 'report'} ({', '.join(p.name for p in files)})")


@dataclass(frozen=True)
class ReportArgs:
    dirs: tyro.conf.Positional[tuple[Path, ...]]
    """Run directories, sweep directories or any folders holding them (merged)."""
    out: Path = Path("report")
    """Where the figures, tables and statistics go."""
    metric: Literal["average", "final", "auc"] = "average"
    """How the best learning rate is chosen: mean return over training (the paper), final return, or area under the curve."""
    reach: tuple[float, ...] = ()
    """Returns for a sample-efficiency table: the frames each method's smoothed curve needs to reach them (e.g. --reach 30)."""


def report_main(argv: list[str]) -> None:
    args = tyro.cli(ReportArgs, args=argv, prog="hypermeta report",
                    description="Figures, tables and statistics of finished or running runs, at each method's best learning rate.")
    files = api.report(list(args.dirs), args.out, metric=args.metric, reach=args.reach)
    print(f"done: {args.out} ({', '.join(p.name for p in files)})")


@dataclass(frozen=True)
class EvalArgs(EvalSettings, CacheOption):
    run_dir: tyro.conf.Positional[Path] = tyro.MISSING  # required; after the settings' defaults
    """A run directory (written by hypermeta train or sweep)."""


def eval_main(argv: list[str]) -> None:
    args = tyro.cli(EvalArgs, args=argv, prog="hypermeta eval",
                    description="Evaluate a run's saved policies on fresh tasks (per-episode returns with 95% CIs, "
                                "success rates); results in RUN_DIR/eval/, training records untouched.")
    settings = {f.name: getattr(args, f.name) for f in dataclasses.fields(EvalSettings)}
    evaluation = api.evaluate(args.run_dir, compile_cache=args.compile_cache, **settings)
    print(f"done: {evaluation.path} (summary.json, trials.csv)")


COMMANDS = {
    "train": (train_main, "train a method on an environment (hypermeta train --help)"),
    "sweep": (sweep_main, "train methods x learning rates x seeds on one environment"),
    "reproduce": (reproduce_main, "run a figure of the paper (hypermeta reproduce lists them)"),
    "report": (report_main, "figures, tables and statistics from run directories"),
    "eval": (eval_main, "evaluate a run's saved policies, longer trials, pictures of behaviour"),
}


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `hypermeta` command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if os.getcwd() not in sys.path and "" not in sys.path:
        # As `python -m` finds modules of the current folder: `--env my_env:make` run beside my_env.py
        # (appended: installed packages keep precedence over files of the same name here).
        sys.path.append(os.getcwd())
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: hypermeta {{{','.join(COMMANDS)}}} ...\n")
        print("\n".join(f"  {name:<10} {text}" for name, (_, text) in COMMANDS.items()))
        sys.exit(0 if argv else 2)
    if argv[0] not in COMMANDS:
        print(f"hypermeta: error: unknown command {argv[0]!r}; choose one of: {', '.join(COMMANDS)}", file=sys.stderr)
        sys.exit(2)
    try:
        COMMANDS[argv[0]][0](argv[1:])
    except UsageError as e:
        print(f"hypermeta: error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as e:
        print(f"\nhypermeta: {e or 'interrupted'}", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
