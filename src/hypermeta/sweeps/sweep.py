"""The paper's protocol: every method x learning rate x seed on one environment.

A sweep is one run directory per method (`OUT/ENV/METHOD`), each an ordinary
`hypermeta train` run whose (seed, lr) pairs train in one compiled program. Running
the same sweep again skips finished methods and resumes interrupted ones from their
last checkpoint, so a sweep can be stopped and continued at any time.

`--state-embeds` adds the paper's other tuned axis (appendix 8.2: the policy's state
embedding on Grid-World, 5 25 125 625): one run directory per size for every method whose
policy reads the state, `OUT/ENV/METHOD` for the method's default size and
`OUT/ENV/METHOD_state-embed-N` for the others, so a tuning sweep re-uses the default sweep.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from hypermeta.config import TrainConfig
from hypermeta.envs.registry import env_spec
from hypermeta.errors import UsageError
from hypermeta.families import method_defaults
from hypermeta.methods.registry import get_method, method_key

SWEEP_LRS: tuple[float, ...] = (3e-3, 1e-3, 3e-4, 1e-4, 3e-5)
"""The paper's policy learning rates (appendix 8.2)."""
SWEEP_SEEDS: tuple[int, ...] = (73, 20, 3)
"""Three seeds, as in the paper."""


@dataclass(frozen=True)
class SweepConfig:
    """One environment, several methods, the paper's learning-rate x seed grid (x policy
    state-embedding sizes with `state_embeds`)."""

    env: str = "grid-world"
    """Environment name."""
    methods: tuple[str, ...] = ("rnn", "rnn-s", "rnn-hn")
    """Methods to train (CLI names or the paper's spellings)."""
    lr: tuple[float, ...] = SWEEP_LRS
    """Policy learning rates."""
    seeds: tuple[int, ...] = SWEEP_SEEDS
    """Seeds (each lr x seed is one run)."""
    frames: int | None = None
    """Frames per run (default: the environment family's budget, 4M on grid-worlds)."""
    parallel_runs: int = 0
    """Runs vmapped side by side (0 = auto: all on a GPU, 1 on a CPU); the rest follow in turn."""
    grad_info: bool = False
    """Log the latent-gradient analysis (paper Figure 11)."""
    log: tuple[Literal["tensorboard", "wandb"], ...] = ()
    """Logging sinks besides metrics.csv, as `hypermeta train --log`: one log run per (seed, lr) of every method."""
    state_embeds: tuple[int, ...] | None = None
    """Policy state-embedding sizes to tune over, e.g. 5 25 125 625 as the paper did on
    Grid-World: every size is its own lr x seed sweep (OUT/ENV/METHOD_state-embed-N; the
    method's default size stays OUT/ENV/METHOD). RNN has no state embedding: it trains
    once. Default: each method's default size (--model.policy-state-embed of train)."""


def _check_state_embeds(sizes: tuple[int, ...]) -> None:
    if not sizes:
        raise UsageError("--state-embeds needs at least one size")
    if min(sizes) < 1:
        raise UsageError(f"--state-embeds sizes must be >= 1, got {list(sizes)}")
    duplicates = sorted({s for s in sizes if sizes.count(s) > 1})
    if duplicates:
        raise UsageError(f"--state-embeds names {', '.join(map(str, duplicates))} more than once")


def plan(sweep: SweepConfig, out: Path) -> list[tuple[TrainConfig, Path]]:
    """The (config, run directory) of every method and state-embedding size, checked before
    anything trains."""
    env_spec(sweep.env)
    methods = [method_key(m) for m in sweep.methods]  # planned or unknown names fail here
    if not methods:
        raise UsageError("--methods needs at least one method")
    duplicates = sorted({m for m in methods if methods.count(m) > 1})
    if duplicates:
        raise UsageError(f"--methods names {', '.join(duplicates)} more than once")
    if sweep.state_embeds is not None:
        _check_state_embeds(tuple(sweep.state_embeds))
    from hypermeta.rundir import run_dir_name  # here: rundir imports orbax, which the driver's import need not

    planned = []
    for m in methods:
        base = method_defaults(sweep.env, m)
        cfg = dataclasses.replace(
            base, frames=base.frames if sweep.frames is None else sweep.frames, seeds=tuple(sweep.seeds),
            lr=tuple(sweep.lr), parallel_runs=sweep.parallel_runs, grad_info=sweep.grad_info,
            log=tuple(sweep.log))
        default = base.model.policy_state_embed
        sizes = sweep.state_embeds if sweep.state_embeds is not None and get_method(m).reads_state else (default,)
        for size in sizes:
            sized = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, policy_state_embed=size))
            planned.append((sized, out / sweep.env / run_dir_name(get_method(m).name, size, default)))
    return planned


def stored_config(path: Path) -> TrainConfig:
    """The configuration of the run in `path`, with its canonical method name."""
    from hypermeta.rundir import RunDir

    _, stored = RunDir.open_for_resume(path)
    return dataclasses.replace(stored, method=method_key(stored.method))


def is_leftover(path: Path) -> bool:
    """Whether `path` is what a run killed while creating its directory leaves: a folder with
    no config.json and nothing but temporary files (run again, it starts anew)."""
    return path.is_dir() and not (path / "config.json").exists() and all(p.name.startswith(".") for p in path.iterdir())


def clear_leftover(path: Path) -> None:
    """Remove `path` if it `is_leftover`, so that a new run can create it."""
    import shutil

    if is_leftover(path):
        shutil.rmtree(path)


def status(cfg: TrainConfig, path: Path, trains_here: bool = True) -> str:
    """'new', 'resume' or 'finished'; a directory holding a different run is an error.
    `trains_here=False` (the driver of a sweep on a cluster): physics "auto" is resolved where
    the run trains, so here it agrees with whichever engine the run recorded, and this process's
    JAX backend is neither asked nor started (the cell checks the engine again where it runs)."""
    if not path.exists() or is_leftover(path):
        return "new"
    if path.is_dir() and not (path / "config.json").exists() and any((p / "config.json").exists() for p in path.iterdir()):
        raise UsageError(f"{path} holds a sweep split into cells by --ray (one run directory per cell below it); "
                         "continue it with the same --ray command, or choose another --out")
    stored = stored_config(path)
    given, kept = cfg.settings(), stored.settings()
    if not trains_here and cfg.physics == "auto":
        # One engine on both sides: `differences` compares the rest without resolving "auto".
        diffs = dataclasses.replace(cfg, physics="c").differences(dataclasses.replace(stored, physics="c"))
    else:
        diffs = cfg.differences(stored)
    if "physics" in diffs and cfg.physics == "auto":  # say what "auto" means where the run would train
        from hypermeta.config import resolve_physics

        given["physics"] = f"auto ({resolve_physics('auto')} on this machine)"
    if diffs:
        raise UsageError(
            f"{path} holds a run with {', '.join(f'{k}={kept.get(k)!r}' for k in diffs)}, but this sweep asks for "
            f"{', '.join(f'{k}={given.get(k)!r}' for k in diffs)}; choose another --out"
        )
    return "finished" if (path / "summary.json").exists() else "resume"


def run_sweep(sweep: SweepConfig, out: Path, show_progress: bool = True) -> list[Path]:
    """Train every method (and state-embedding size) of the sweep into `out/ENV/METHOD[...]`;
    returns the run directories."""
    from hypermeta.training.loop import Stopped, train
    from hypermeta.validate import validate

    planned = plan(sweep, out)
    states = []
    for cfg, path in planned:
        validate(cfg)
        states.append(status(cfg, path))  # refuse a conflicting directory before training anything
    for (cfg, path), state in zip(planned, states, strict=True):
        label = path.name  # the method, or METHOD_state-embed-N
        if state == "finished":
            print(f"{label}: finished, skipped ({path})")
            continue
        if state == "resume":
            print(f"{label}: resuming {path}")
            cfg = dataclasses.replace(stored_config(path), parallel_runs=cfg.parallel_runs, log=cfg.log)
        clear_leftover(path)
        try:
            train(cfg, path, resume=state == "resume", show_progress=show_progress)
        except Stopped as e:
            raise Stopped(f"{label}: {e.where}; run the same command again to continue the sweep "
                          "(finished methods are skipped, interrupted ones resume)", e.where) from None
    return [path for _, path in planned]
