"""The Python API: what the `hypermeta` command does, as typed functions (the command calls them).

    cfg = configure("grid-world", "rnn-hn", frames=200_000, seeds=(73, 20), ppo={"num_envs": 8})
    run = train(cfg, "runs/hn")               # hypermeta train; a Run of the finished directory
    run.metrics                               # metrics.csv as a pandas DataFrame (the report extra)
    evaluate(run, trials=100, episodes=6)     # hypermeta eval
    report(["runs/hn"], "report")             # hypermeta report
    policy = run.policy(seed=73)              # a trained policy for your own loop (`Policy`)

`configure` builds exactly the configuration of `hypermeta train --env ENV --method METHOD`
(the environment family's and the method's paper defaults, `hypermeta.families`) and then
overrides fields by name, nested sections as dicts (`with_overrides`); every setting is
checked as the command line checks it (`hypermeta.validate`). Bad names and values raise
`UsageError` with the command line's one-line message.

Imports: this module sits just below `hypermeta.cli` (the command line calls these
functions; nothing here imports the command line). The heavy modules (the training loop,
orbax, pandas) are imported by the functions that need them, so `hypermeta.cli` stays quick
to import.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import numbers
import sys
import time
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from hypermeta.config import EvalSettings, TrainConfig
from hypermeta.envs.registry import env_spec
from hypermeta.errors import UsageError
from hypermeta.families import method_defaults
from hypermeta.methods.registry import method_key
from hypermeta.sweeps.cells import ClusterConfig
from hypermeta.sweeps.sweep import SweepConfig

if TYPE_CHECKING:  # type hints only: hypermeta.policy imports JAX, orbax and the networks
    import pandas as pd

    from hypermeta.policy import Policy

T = TypeVar("T")
PathLike = str | Path

__all__ = ["Evaluation", "Run", "configure", "defaults", "evaluate", "load_run", "report", "resumable_config", "sweep",
           "train", "with_overrides"]


# --------------------------------------------------------------------------- configurations


def defaults(env: str, method: str) -> TrainConfig:
    """The paper's configuration of `method` on `env`, before any override: the environment
    family's settings with the method-dependent ones resolved and the method stored under its
    canonical name ('RNN+HN' -> 'rnn-hn'). What `hypermeta train --env ENV --method METHOD`
    starts from. Unknown names raise `UsageError` listing the registered ones."""
    env_spec(env)  # an unknown name says which exist, before anything else is looked up
    return method_defaults(env, method)


def configure(env: str, method: str, **overrides: Any) -> TrainConfig:
    """The configuration `hypermeta train --env ENV --method METHOD ...` trains, checked.

    Args:
        env: an environment name (`hypermeta train --help` lists them), e.g. "grid-world".
        method: a method name or the paper's spelling, e.g. "rnn-hn" or "RNN+HN".
        **overrides: `TrainConfig` fields by name, as their command-line options: `frames=200_000`,
            `seeds=(73, 20)` or `seeds=73`, `lr=3e-4` (a scalar or a sequence for tuple fields);
            nested sections as dicts of their own fields, merged into the defaults:
            `ppo={"num_envs": 8}`, `model={"latent_dim": 10}`, `inference={...}`. A key with
            dots is the same as nesting: `**{"ppo.num_envs": 8}`.

    Returns:
        The frozen `TrainConfig` (pass it to `train`; change it further with `with_overrides`).

    Raises:
        UsageError: an unknown environment, method or field name, a value of the wrong type,
            or a setting the command line would refuse (`hypermeta.validate`), in one line
            naming the value and what is allowed.
    """
    from hypermeta.validate import validate  # builds the environment: the first use of JAX

    cfg = with_overrides(defaults(env, method), **overrides)
    validate(cfg)
    return cfg


def with_overrides(obj: T, /, **overrides: Any) -> T:
    """A copy of the frozen dataclass `obj` with fields replaced by name, recursively.

    Works on any dataclass (`TrainConfig`, `SweepConfig`, `EvalSettings`, ...) without knowing
    its fields: a dict given for a field that holds a dataclass is merged into it field by
    field (`model={"transformer": {"dim": 64}}`), a key "a.b" is the dict {"a": {"b": ...}},
    and values are checked against the field's type: an int where an int is declared (a float
    with an integral value such as 2e5 is accepted), a number for a float, one of a Literal's
    values, a scalar or a sequence for a tuple field; a field of KEY=VALUE strings (metadata
    "key_values": `model.sequence_options`) also takes a dict. Nothing else is checked here
    (`configure` also runs the command line's checks).

    Raises:
        UsageError: an unknown field (with the close matches and the fields there are) or a
            value of the wrong type.
    """
    return _merge(obj, overrides, "")


def _merge(obj: T, overrides: Mapping[str, Any], where: str) -> T:
    """`with_overrides` below the field path `where` ("" at the top, "ppo." in a section)."""
    if not isinstance(overrides, Mapping):
        raise UsageError(f"{where.rstrip('.') or type(obj).__name__} takes a dict of its settings "
                         f"({', '.join(_field_names(obj))}), got {overrides!r}")
    fields = _field_names(obj)
    hints = _type_hints(type(obj))
    key_values = {f.name for f in dataclasses.fields(obj) if f.metadata.get("key_values")}
    changes: dict[str, Any] = {}
    for name, value in _nest(overrides).items():
        if name not in fields:
            close = difflib.get_close_matches(name, fields, n=1)
            hint = f" (did you mean {where + close[0]!r}?)" if close else ""
            raise UsageError(f"unknown setting {where + name!r}{hint}; {type(obj).__name__} has: {', '.join(fields)}")
        if name in key_values and isinstance(value, Mapping):  # {"width": 64}: the command line's "width=64"
            value = tuple(f"{k}={v}" for k, v in value.items())
        changes[name] = _value(getattr(obj, name), value, hints.get(name), where + name)
    return dataclasses.replace(obj, **changes)


def _field_names(obj: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(obj) if f.init]


def _type_hints(cls: type) -> dict[str, Any]:
    """A dataclass's field types, resolved; a field whose annotation cannot be resolved is left
    out (its values then follow the type of its current value)."""
    try:
        return typing.get_type_hints(cls)
    except Exception:  # an annotation naming something only a type checker imports, or a local class
        pass
    namespace = dict(vars(sys.modules[cls.__module__])) if cls.__module__ in sys.modules else {}
    hints = {}
    for f in dataclasses.fields(cls):
        try:  # what get_type_hints does, one field at a time
            hints[f.name] = eval(f.type, namespace) if isinstance(f.type, str) else f.type  # noqa: S307
        except Exception:
            continue
    return hints


def _nest(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """{"ppo.num_envs": 8, "ppo": {"clip": 0.1}} -> {"ppo": {"num_envs": 8, "clip": 0.1}}."""
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        head, dot, rest = str(key).partition(".")
        value = {rest: value} if dot else value
        before = out.get(head)
        if isinstance(before, Mapping) or isinstance(value, Mapping):
            # Two settings of one section merge, in either order: a section given whole (a
            # dataclass) and a dotted key into it keep both.
            before, value = _as_fields(before), _as_fields(value)
        out[head] = {**before, **value} if isinstance(before, Mapping) and isinstance(value, Mapping) else value
    return out


def _as_fields(value: Any) -> Any:
    """A dataclass instance as the dict of its fields (one level); anything else unchanged."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value) if f.init}
    return value


def _value(current: Any, value: Any, hint: Any, name: str) -> Any:
    """`value` for the field `name` (declared `hint`, holding `current`): checked, converted."""
    if dataclasses.is_dataclass(current) and not isinstance(current, type):
        if isinstance(value, type(current)):
            return value
        return _merge(current, value, name + ".")  # a dict: merged into the section's values
    if hint is None:  # unresolved annotations: go by the current value's type
        hint = tuple[type(current[0]), ...] if isinstance(current, tuple) and current else type(current)
    return _convert(value, hint, name)


def _convert(value: Any, hint: Any, name: str) -> Any:
    """`value` as the type `hint`, or a UsageError naming `name`, the value and what is allowed."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union or origin is types.UnionType:
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                if dataclasses.is_dataclass(option) and isinstance(value, Mapping):
                    return _merge(option(), value, name + ".")
                return _convert(value, option, name)
            except UsageError:
                continue
        raise UsageError(f"{name} must be {' or '.join(_describe(a) for a in args)}, got {value!r}")
    if origin is Literal:
        if value in args:
            return value
        raise UsageError(f"{name} must be one of {', '.join(map(repr, args))}, got {value!r}")
    if origin is tuple:
        items = _items(value)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], name) for v in items)
        if len(items) != len(args):
            raise UsageError(f"{name} must be {len(args)} values, got {value!r}")
        return tuple(_convert(v, a, name) for v, a in zip(items, args, strict=True))
    return _scalar(value, hint, name)


def _items(value: Any) -> list[Any]:
    """A tuple field's values: a sequence's (or numpy array's) items, or the one scalar given."""
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        value = value.tolist()
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence):
        return [value]
    return list(value)


def _scalar(value: Any, hint: Any, name: str) -> Any:
    """A bool, int, float, str or Path field's value; other types are taken as they are."""
    if hint is bool:
        if isinstance(value, bool) or type(value).__name__ == "bool_":  # numpy's bool too
            return bool(value)
    elif hint is int:
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return int(value)
        if isinstance(value, numbers.Real) and not isinstance(value, bool) and float(value).is_integer():
            return int(value)  # 2e5 frames
    elif hint is float:
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    elif hint is Path:
        if isinstance(value, str | Path):
            return Path(value)
    else:
        return value
    raise UsageError(f"{name} must be {_describe(hint)}, got {value!r}")


def _describe(hint: Any) -> str:
    """How an error message names a type."""
    words = {bool: "True or False", int: "an integer", float: "a number", str: "a string", Path: "a path",
             type(None): "None"}
    if hint in words:
        return words[hint]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return "one of " + ", ".join(map(repr, args))
    if origin is tuple:
        return f"{_describe(args[0])} or a sequence of them" if args and args[-1] is Ellipsis else f"{len(args)} values"
    return getattr(hint, "__name__", str(hint))


# --------------------------------------------------------------------------- runs


@dataclass(frozen=True)
class Evaluation:
    """One evaluation of a run's saved policies (`evaluate`, `hypermeta eval`)."""

    path: Path
    """Its folder, RUN_DIR/eval/update-U_episodes-K_trials-N_seed-S (trials.csv, summary.json)."""
    summary: dict[str, Any]
    """Its summary.json: env, method, checkpoint, episodes, trials, seed and "runs": per run
    ("seed=S,lr=LR") and task set, the mean and 95% CI of the meta-episode return and of
    each episode's return (and success rates where the environment has them)."""

    @property
    def runs(self) -> dict[str, Any]:
        """summary["runs"]: "seed=S,lr=LR" -> {"seed", "lr", "sets": {task set: statistics}}."""
        return self.summary["runs"]


class Run:
    """A run directory written by `train`, `sweep` or the command line; reads on demand.

    Attributes:
        path: the run directory.
    """

    def __init__(self, path: PathLike, config: TrainConfig | None = None):
        """`config`: the run's configuration if known (else read from config.json when asked);
        `load_run` checks that `path` is a run directory first."""
        self.path = Path(path)
        self._config = config

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Run) and self.path.resolve() == other.path.resolve()

    def __hash__(self) -> int:
        return hash(self.path.resolve())

    @property
    def config(self) -> TrainConfig:
        """The `TrainConfig` recorded in config.json (physics "auto" resolved on MuJoCo tasks)."""
        if self._config is None:
            self._config = _read_config(self.path)
        return self._config

    @property
    def runs(self) -> list[tuple[int, float]]:
        """(seed, lr) of every run in the directory, in the order of `TrainConfig.runs`."""
        return self.config.runs

    @property
    def finished(self) -> bool:
        """Whether training finished (summary.json exists)."""
        return (self.path / "summary.json").is_file()

    @property
    def summary(self) -> dict[str, Any] | None:
        """summary.json as a dict (updates, frames_per_run, wall_seconds, compile_seconds,
        final_meta_episode_return per "seed=S,lr=LR", diverged), or None until training finished."""
        path = self.path / "summary.json"
        return json.loads(path.read_text()) if path.is_file() else None

    @property
    def final_returns(self) -> dict[tuple[int, float], float | None]:
        """(seed, lr) -> the run's last evaluated meta-episode return (None: the run diverged),
        in the order of `runs`; empty until training finished (`metrics` has every evaluation)."""
        from hypermeta.rundir import run_key

        finals = (self.summary or {}).get("final_meta_episode_return", {})
        return {(seed, lr): finals[run_key(seed, lr)] for seed, lr in self.runs if run_key(seed, lr) in finals}

    @property
    def metrics(self) -> pd.DataFrame:
        """metrics.csv as a pandas DataFrame, one row per evaluation per run, with env, method,
        state_embed, run_dir, finished and a boolean `diverged` added (`hypermeta.analysis.runs`);
        empty before the first evaluation. Needs the report extra (pandas)."""
        try:
            from hypermeta.analysis.runs import load_run as load_metrics
        except ImportError as e:
            raise UsageError(f"Run.metrics needs pandas ({e.name} is missing): pip install 'hypermeta[report]'") from None
        return load_metrics(self.path)

    @property
    def checkpoints(self) -> list[int]:
        """The updates of the saved checkpoints, oldest first (the last two are kept)."""
        folder = self.path / "checkpoints"
        return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit()) if folder.is_dir() else []

    @property
    def evaluations(self) -> list[Evaluation]:
        """Every evaluation `evaluate` / `hypermeta eval` wrote under RUN_DIR/eval/, oldest first."""
        from hypermeta.evaluation import evaluation_folders

        return [Evaluation(f, json.loads((f / "summary.json").read_text())) for f in evaluation_folders(self.path)]

    def policy(self, seed: int | None = None, lr: float | None = None, checkpoint: str | int = "latest") -> Policy:
        """One run's trained policy, to act step by step in your own loop (`hypermeta.policy.Policy`).

        Args:
            seed: the training seed of the run (needed where the directory holds several seeds).
            lr: its learning rate (needed where the directory holds several).
            checkpoint: "latest" or the update number of a saved checkpoint (`checkpoints`).
        """
        from hypermeta.policy import load_policy

        return load_policy(self.path, seed=seed, lr=lr, checkpoint=checkpoint)

    def evaluate(self, **settings: Any) -> Evaluation:
        """`evaluate(self, **settings)`: this run's policies on fresh tasks."""
        return evaluate(self, **settings)


def _read_config(path: Path) -> TrainConfig:
    """A run directory's configuration, or a UsageError saying why `path` is not a run directory."""
    from hypermeta.evaluation import open_run

    run, cfg = open_run(path)
    run.close()
    return cfg


def load_run(path: PathLike) -> Run:
    """The run directory `path` (written by `train`, `sweep` or the command line).

    Raises:
        UsageError: `path` does not exist or holds no readable config.json.
    """
    return Run(path, _read_config(Path(path)))


# --------------------------------------------------------------------------- commands


def _setup_compile_cache(setting: str | None) -> None:
    """JAX's persistent compilation cache (`hypermeta.compile_cache`), before anything compiles."""
    from hypermeta import compile_cache

    compile_cache.setup(setting)


def resumable_config(path: PathLike) -> TrainConfig:
    """The configuration of the interrupted run in `path` (its method under the canonical name).

    Raises:
        UsageError: `path` is not a run directory, or the run already finished.
    """
    from hypermeta.rundir import RunDir

    run, stored = RunDir.open_for_resume(Path(path))
    if run.finished:
        raise UsageError(f"--resume {str(path)!r}: this run already finished (summary.json exists)")
    return dataclasses.replace(stored, method=method_key(stored.method))


def _check_resume(cfg: TrainConfig, stored: TrainConfig) -> None:
    """Refuse a configuration that differs from the run being resumed in what changes results."""
    diffs = cfg.differences(stored)
    if diffs:
        given, kept = cfg.settings(), stored.settings()
        raise UsageError(
            f"resume: {', '.join(f'{k}={given.get(k)!r}' for k in diffs)} differs from the run being resumed "
            f"({', '.join(f'{k}={kept.get(k)!r}' for k in diffs)}); resume with the run's own settings"
        )


def _default_out(cfg: TrainConfig) -> Path:
    """Where `train` writes when no directory is given: runs/ENV_METHOD_YYYYmmdd-HHMMSS."""
    return Path("runs") / f"{cfg.env}_{cfg.method}_{time.strftime('%Y%m%d-%H%M%S')}"


def train(cfg: TrainConfig | None, out: PathLike | None = None, *, resume: bool = False, progress: bool = True,
          compile_cache: str | None = None) -> Run:
    """Train every (seed, lr) run of `cfg` in one compiled program: `hypermeta train`.

    Args:
        cfg: the configuration (`configure`). With `resume`, None continues the stored one;
            a configuration given must agree with it.
        out: the run directory to create (default: runs/ENV_METHOD_TIMESTAMP); must not exist.
            With `resume`: the directory of the interrupted run.
        resume: continue the run in `out` from its last checkpoint.
        progress: show the progress bar and the run's lines on the terminal.
        compile_cache: JAX's persistent compilation cache, a directory or "off" (default:
            $HYPERMETA_COMPILE_CACHE, else ~/.cache/hypermeta/jax).

    Returns:
        The `Run` of the directory, finished (metrics.csv, checkpoints, curve.png, summary.json).

    Raises:
        UsageError: a bad configuration, an existing `out`, or a resume that cannot continue.
        KeyboardInterrupt: Ctrl-C (`hypermeta.training.loop.Stopped`) after saving a checkpoint;
            call again with `resume=True`.
    """
    from hypermeta.training import loop

    if resume:
        if out is None:
            raise UsageError("resume=True needs out, the directory of the run to continue")
        stored = resumable_config(out)
        if cfg is not None:
            cfg = dataclasses.replace(cfg, method=method_key(cfg.method))
            _check_resume(cfg, stored)
        cfg = stored if cfg is None else cfg
    elif cfg is None:
        raise UsageError("train needs a TrainConfig (hypermeta.configure(env, method, ...)), or resume=True and out")
    cfg = dataclasses.replace(cfg, method=method_key(cfg.method))  # 'RNN+HN' and 'rnn-hn' are one run
    _setup_compile_cache(compile_cache)
    out = _default_out(cfg) if out is None else Path(out)
    return Run(loop.train(cfg, out, resume=resume, show_progress=progress).path)


def sweep(env: str, methods: str | Sequence[str], out: PathLike = "runs/sweep", *,
          cluster: ClusterConfig | Mapping[str, Any] | None = None, progress: bool = True,
          compile_cache: str | None = None, **settings: Any) -> list[Run]:
    """The paper's protocol, every method x lr x seed on one environment: `hypermeta sweep`.

    Every method (and state-embedding size) is one run directory, OUT/ENV/METHOD[_state-embed-N];
    calling again with the same arguments skips finished methods and resumes interrupted ones.

    Args:
        env: the environment.
        methods: method names (or one name).
        out: the sweep directory.
        cluster: run the cells as Ray tasks (the ray extra; docs/cluster.md): a `ClusterConfig`
            or a dict of its fields, e.g. {"ray": "auto", "cell_gpus": 1}; None: train here.
            This process drives the cells and checks each configuration (a MuJoCo one builds
            its environment, which starts JAX's default backend): on a GPU node, run it with
            JAX_PLATFORMS=cpu, as `hypermeta sweep --ray` pins itself.
        progress: show progress.
        compile_cache: as in `train`.
        **settings: `SweepConfig` fields: lr, seeds (scalars or sequences), frames (default: the
            family's budget), parallel_runs, grad_info, log, state_embeds.

    Returns:
        The run directories: one per method and size, or, on a cluster, one per cell.
    """
    env_spec(env)
    config = with_overrides(SweepConfig(), env=env, methods=methods, **settings)
    if cluster is not None and not isinstance(cluster, ClusterConfig):
        cluster = with_overrides(ClusterConfig(), **cluster)
    if cluster is not None and cluster.ray is None:
        raise UsageError("cluster=... needs 'ray': a head node's address, 'auto' or 'local' (cluster=None trains here)")
    on_ray = cluster is not None
    _setup_compile_cache(compile_cache)  # also exported to the sweep's local Ray workers
    if on_ray:  # cells as Ray tasks on a cluster (docs/cluster.md)
        from hypermeta.sweeps.cluster import run_cluster_sweeps

        cells = run_cluster_sweeps([config], Path(out), cluster, show_progress=progress)
        return [Run(cell.path, cell.cfg) for cell in cells]
    from hypermeta.sweeps.sweep import run_sweep

    return [Run(path) for path in run_sweep(config, Path(out), show_progress=progress)]


def evaluate(run: Run | PathLike, *, verbose: bool = True, compile_cache: str | None = None,
             **settings: Any) -> Evaluation:
    """A run's saved policies on fresh tasks, deterministic actions: `hypermeta eval`.

    Results go to RUN_DIR/eval/update-U_episodes-K_trials-N_seed-S/ (trials.csv, summary.json,
    pictures); the training records are never touched.

    Args:
        run: a `Run` or a run directory.
        verbose: print the per-run results (as the command does).
        compile_cache: as in `train`.
        **settings: `EvalSettings` fields: checkpoint ("latest" or an update number), trials
            (default 100), episodes per trial (default: as trained), seed (of the tasks),
            train_seeds and lr (only those runs), render (trials to picture per run).

    Returns:
        The `Evaluation` (its folder and summary.json).
    """
    if isinstance(settings.get("checkpoint"), numbers.Integral):
        settings["checkpoint"] = str(settings["checkpoint"])  # an update number, as the option takes it
    chosen = with_overrides(EvalSettings(), **settings)
    _setup_compile_cache(compile_cache)
    from hypermeta.evaluation import run_eval

    path = run.path if isinstance(run, Run) else Path(run)
    folder = run_eval(path, chosen, say=print if verbose else _silent)
    return Evaluation(folder, json.loads((folder / "summary.json").read_text()))


def _silent(_: str) -> None:
    """The `say` of a quiet evaluation."""


def report(dirs: Run | PathLike | Sequence[Run | PathLike], out: PathLike = "report", *,
           metric: Literal["average", "final", "auc"] = "average", title: str | None = None,
           reach: Sequence[float] = ()) -> list[Path]:
    """Figures, tables and statistics at each method's best learning rate: `hypermeta report`.

    Args:
        dirs: run directories, sweep directories or folders holding them (merged), or `Run`s.
        out: where the files go.
        metric: how the best lr is chosen: mean return over training (the paper), final return,
            or the area under the curve.
        title: the report's title.
        reach: returns for a table of the frames each method needs to reach them (sample
            efficiency, on the smoothed curves), e.g. `reach=[30]`.

    Returns:
        The files written. Needs the report extra (pip install 'hypermeta[report]').
    """
    from hypermeta.analysis.report import write_report  # a missing extra is one UsageError line

    items = [dirs] if isinstance(dirs, Run | str | Path) else list(dirs)
    paths = [d.path if isinstance(d, Run) else Path(d) for d in items]
    return write_report(paths, Path(out), metric=metric, title=title,
                        reach=_convert(reach, tuple[float, ...], "reach"))
