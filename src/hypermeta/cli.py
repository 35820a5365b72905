"""`hypermeta` command line (tyro): every TrainConfig field is an option.

Defaults come from the chosen environment's family, so `hypermeta train --env X
--help` shows the paper's settings for X; with `--resume DIR` they come from the
run being resumed, and any option given must agree with it.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path

import tyro

from hypermeta.config import TrainConfig, family_defaults
from hypermeta.envs.registry import ENVIRONMENTS
from hypermeta.errors import UsageError
from hypermeta.methods.registry import METHODS, get_method


@dataclass(frozen=True)
class TrainArgs(TrainConfig):
    out: Path | None = None
    """Run directory to create (default: runs/ENV_METHOD_TIMESTAMP). Must not exist."""
    resume: Path | None = None
    """Continue the interrupted run in this directory from its last checkpoint."""


def _description() -> str:
    envs = ", ".join(ENVIRONMENTS)
    methods = ", ".join(f"{m.name} ({m.paper_name})" for m in METHODS.values())
    return (
        "Train a meta-RL method with recurrent PPO; every --seeds x --lr pair is one run, "
        f"all trained in one compiled program.\n\nEnvironments: {envs}\nMethods: {methods}"
    )


def _prescan(argv: list[str]) -> argparse.Namespace:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--env", default=None)
    pre.add_argument("--resume", default=None)
    return pre.parse_known_args(argv)[0]


def _config_of(args: TrainArgs) -> TrainConfig:
    return TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})


def train_main(argv: list[str]) -> None:
    from hypermeta.envs.registry import env_spec

    pre = _prescan(argv)
    stored = None
    if pre.resume is not None:
        from hypermeta.rundir import RunDir

        run, stored = RunDir.open_for_resume(Path(pre.resume))
        if run.finished:
            raise UsageError(f"--resume {pre.resume!r}: this run already finished (summary.json exists)")
        base = stored
    else:
        if pre.env is not None:
            env_spec(pre.env)  # a clear error for an unknown name before tyro parses anything
        base = family_defaults(pre.env or TrainConfig.env)
    default = TrainArgs(**{f.name: getattr(base, f.name) for f in dataclasses.fields(TrainConfig)})
    args = tyro.cli(TrainArgs, args=argv, default=default, description=_description(), prog="hypermeta train")
    # Store the canonical method name, so 'RNN+HN' and 'rnn-hn' are the same run.
    cfg = dataclasses.replace(_config_of(args), method=get_method(args.method).name)
    if stored is not None:
        stored = dataclasses.replace(stored, method=get_method(stored.method).name)
        given, kept = cfg.to_dict(), stored.to_dict()
        diffs = [k for k in kept if given[k] != kept[k]]
        if diffs:
            raise UsageError(
                f"--resume: {', '.join(f'{k}={given[k]!r}' for k in diffs)} differs from the run being resumed "
                f"({', '.join(f'{k}={kept[k]!r}' for k in diffs)}); drop those options"
            )
        out = Path(pre.resume)
    else:
        if args.out is None:
            import time

            out = Path("runs") / f"{cfg.env}_{cfg.method}_{time.strftime('%Y%m%d-%H%M%S')}"
        else:
            out = args.out

    from hypermeta.training.loop import train

    run = train(cfg, out, resume=stored is not None)
    print(f"done: {run.path}  (metrics.csv, curve.png, summary.json)")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `hypermeta` command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"train": train_main}
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: hypermeta {train} ...\n\n  train   train a method on an environment (hypermeta train --help)")
        sys.exit(0 if argv else 2)
    if argv[0] not in commands:
        print(f"hypermeta: error: unknown command {argv[0]!r}; choose one of: {', '.join(commands)}", file=sys.stderr)
        sys.exit(2)
    try:
        commands[argv[0]](argv[1:])
    except UsageError as e:
        print(f"hypermeta: error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as e:
        print(f"\nhypermeta: {e or 'interrupted'}", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
