"""The run loop: all runs of a TrainConfig in one compiled program, with progress,
metrics, checkpoints, resume and divergence detection.

Divergence: after every chunk each run is checked for non-finite values among the
chunk's metrics (losses and other training statistics first, then evaluation returns)
and among its parameters (one jitted, run-vmapped all-finite reduction). The first
chunk at which a run is seen non-finite marks it diverged at that chunk's last update
(the resolution is one chunk of `eval_interval` updates): one line on the terminal, a
record in diverged.json and summary.json, and `diverged` = 1 on its metrics.csv rows
from then on. The run keeps training in the same compiled program (its NaNs cannot
reach the other runs, which are vmapped or mapped side by side), so the other runs
are unaffected; its returns are not a learning result.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from hypermeta import compile_cache
from hypermeta.config import TrainConfig, resolve_physics
from hypermeta.envs.mjx_env import MjxEnv
from hypermeta.envs.registry import make_env
from hypermeta.rundir import RunDir, atomic_write_json, run_key
from hypermeta.training.inference import ELBO_STATS
from hypermeta.training.learner import Learner, pretrain_updates
from hypermeta.training.sinks import Sinks
from hypermeta.validate import validate

GRAD_INFO = ("latent_grad_norm", "state_grad_norm", "latent_norm", "state_norm")


def resolve_parallel_runs(parallel_runs: int) -> int:
    """TrainConfig.parallel_runs with 'auto' (0) resolved for the default JAX backend."""
    if parallel_runs > 0:
        return parallel_runs
    return 1 if jax.default_backend() == "cpu" else 0


def _rows(cfg: TrainConfig, metrics: dict, update: int, fps: float, diverged: dict[int, dict] | None = None) -> list[dict]:
    """One metrics.csv row per run from a chunk's vmapped metrics.

    `diverged` holds the indices of the runs marked diverged (at this chunk or before);
    their rows get `diverged` = 1, every other row 0."""
    diverged = diverged or {}
    m = jax.tree.map(np.asarray, metrics)
    rows = []
    pretrain_frames = min(update, pretrain_updates(cfg)) * cfg.ppo.frames_per_update
    # Evaluation sets: "" (the training tasks) and, for host environments with several
    # task sets, "<split>_" (ML10's test classes), each with optional success rates.
    prefixes = [name.removesuffix("meta_episode_return") for name in m if name.endswith("meta_episode_return")]
    for i, (seed, lr) in enumerate(cfg.runs):
        row = {"seed": seed, "lr": lr, "update": update, "frames": update * cfg.ppo.frames_per_update,
               "pretrain_frames": pretrain_frames}
        for p in sorted(prefixes):
            row[f"{p}meta_episode_return"] = float(m[f"{p}meta_episode_return"][i])
            row.update({f"{p}episode_{k + 1}_return": float(v) for k, v in enumerate(m[f"{p}episode_returns"][i])})
            if f"{p}success_rate" in m:
                row[f"{p}success_rate"] = float(m[f"{p}success_rate"][i])
                row.update({f"{p}episode_{k + 1}_success": float(v) for k, v in enumerate(m[f"{p}episode_successes"][i])})
        for name in ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "train_reward", *ELBO_STATS,
                     *GRAD_INFO):
            if name in m:
                row[name] = float(m[name][i])
        row["frames_per_second"] = fps
        row["diverged"] = int(i in diverged)
        rows.append(row)
    return rows


# Training statistics in the order a divergence message names them: the losses first.
DIVERGENCE_ORDER = ("policy_loss", "value_loss", "entropy", *ELBO_STATS, "approx_kl", "clip_fraction",
                    *GRAD_INFO, "train_reward")


def _leaves_finite(params) -> jax.Array:
    """Whether every floating-point value of one run's parameter pytree is finite."""
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(params) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


params_finite = jax.jit(jax.vmap(_leaves_finite))
"""(runs,) bool: `_leaves_finite` of every run of a stacked parameter pytree; one reduction
per leaf, compiled once per parameter structure, and cheap next to a chunk."""


def non_finite(metrics: dict, finite_params: np.ndarray) -> list[list[str]]:
    """Per run, the names of the chunk's non-finite metrics (in DIVERGENCE_ORDER, then the
    remaining metrics by name), followed by "parameters" if its parameters are not all
    finite; an empty list for a healthy run."""
    m = {name: np.asarray(v) for name, v in metrics.items()}
    names = [n for n in DIVERGENCE_ORDER if n in m] + sorted(n for n in m if n not in DIVERGENCE_ORDER)
    finite_params = np.asarray(finite_params, dtype=bool)
    found: list[list[str]] = [[] for _ in range(len(finite_params))]
    for name in names:
        values = m[name]
        if not np.issubdtype(values.dtype, np.inexact):
            continue
        bad = ~np.isfinite(values).reshape(len(found), -1).all(axis=1)
        for i in np.flatnonzero(bad):
            found[i].append(name)
    for i in np.flatnonzero(~finite_params):
        found[i].append("parameters")
    return found


def divergence_line(seed: int, lr: float, record: dict, resumed: bool = False) -> str:
    """The one terminal line that reports a diverged run."""
    what = record["non_finite"]
    shown = what[:3] if len(what) <= 4 else what[:2]
    rest = what[len(shown):]
    tail = "" if not rest else f" and {rest[0]}" if len(rest) == 1 else f" and {len(rest)} more"
    reason = "non-finite " + ", ".join(shown) + tail
    when = ", before this resume," if resumed else ""
    return (f"run seed {seed} lr {lr:g} diverged at update {record['update']}{when} ({reason}); "
            "its returns are not a learning result")


class Stopped(KeyboardInterrupt):
    """Training stopped on request; `where` says how far it got, the message how to go on."""

    def __init__(self, message: str, where: str):
        super().__init__(message)
        self.where = where


@contextlib.contextmanager
def _stop_requests() -> Iterator[threading.Event]:
    """Turn the first SIGINT/SIGTERM into a request to stop at the next chunk boundary.

    A chunk call donates its input state to XLA, so the state of an interrupted chunk no
    longer exists; stopping between chunks lets the loop save a checkpoint of the state it
    has. A second signal interrupts at once (losing the work since the last checkpoint).
    """
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():  # signals only reach the main thread
        yield stop
        return

    def request(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    # A signal the process was started ignoring (SIGINT of a background job, nohup) stays ignored.
    watched = [sig for sig in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(sig) is not signal.SIG_IGN]
    previous = {sig: signal.signal(sig, request) for sig in watched}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def recorded_config(cfg: TrainConfig) -> TrainConfig:
    """The configuration a new run directory records: on a MuJoCo task, the physics engine
    the run uses instead of "auto", so a resume on another kind of machine keeps it (or is
    refused, `TrainConfig.differences`) and never switches engines silently."""
    if isinstance(make_env(cfg.env), MjxEnv):
        return dataclasses.replace(cfg, physics=resolve_physics(cfg.physics))
    return cfg


def train(cfg: TrainConfig, out: Path, resume: bool = False, show_progress: bool = True,
          fence: Callable[[], None] | None = None) -> RunDir:
    """Train every (seed, lr) run of `cfg` into the run directory `out`.

    Sets up the persistent compilation cache first (`hypermeta.compile_cache.setup()`: a
    no-op when a command or the caller already did), so a Python caller and a Ray cell
    load a configuration compiled before instead of compiling it again.

    `fence` (a sweep cell's attempt, hypermeta.sweeps.cell_task.claim_attempt) is called before each
    chunk's writes, each checkpoint and the summary; it raises to stop an attempt that another
    one superseded before it writes anything more."""
    compile_cache.setup()
    validate(cfg)
    if not resume:
        cfg = recorded_config(cfg)
    run = RunDir(out) if resume else RunDir.create(out, cfg)
    learner = Learner(cfg)
    states = learner.init_runs([s for s, _ in cfg.runs], [lr for _, lr in cfg.runs])
    start = 0
    if resume:
        restored = run.restore_checkpoint(states)
        if restored is not None:
            start, states = restored
        run.truncate_metrics(start)
        run.truncate_diverged(start)

    # The collector's resources (host environments) and the log sinks are released when training ends.
    sinks = Sinks(run, cfg, start_frames=start * cfg.ppo.frames_per_update)
    with contextlib.closing(learner.collector), contextlib.closing(sinks):
        chunk = learner.compile_chunk(resolve_parallel_runs(cfg.parallel_runs))
        return _train_loop(cfg, out, run, states, chunk, start, t_start=time.time(), show_progress=show_progress,
                           sinks=sinks, fence=fence or _unfenced)


def _mark_diverged(cfg: TrainConfig, run: RunDir, diverged: dict[int, dict], metrics: dict, states,
                   update: int) -> list[str]:
    """Mark the runs seen non-finite for the first time in this chunk (in `diverged` and
    diverged.json); the terminal lines that report them."""
    found = non_finite(metrics, np.asarray(params_finite(states.params)))
    new = {i: {"update": update, "non_finite": names} for i, names in enumerate(found) if names and i not in diverged}
    if new:
        diverged.update(new)
        run.write_diverged({run_key(*cfg.runs[i]): record for i, record in diverged.items()})
    return [divergence_line(*cfg.runs[i], record) for i, record in sorted(new.items())]


def _finish(cfg: TrainConfig, run: RunDir, update: int, diverged: dict[int, dict], t_start: float,
            compile_seconds: float, say) -> None:
    """A finished run directory: curve.png, summary.json, and a line on diverged runs."""
    from hypermeta.analysis.plot import plot_run

    plot_run(run, cfg)
    keys = [run_key(seed, lr) for seed, lr in cfg.runs]
    rows = {run_key(int(r["seed"]), float(r["lr"])): r for r in run.read_metrics() if int(r["update"]) == update}
    marked = {keys[i]: record for i, record in diverged.items()}
    atomic_write_json(run.summary_path, {
        "updates": update, "frames_per_run": update * cfg.ppo.frames_per_update,
        "wall_seconds": time.time() - t_start, "compile_seconds": compile_seconds,
        # A diverged run's return is not a learning result: null, and its record under "diverged".
        "final_meta_episode_return": {k: None if k in marked else float(rows[k]["meta_episode_return"])
                                      for k in keys if k in rows},
        "diverged": marked,
    })
    run.close()
    if diverged:
        listed = ", ".join(f"seed {cfg.runs[i][0]} lr {cfg.runs[i][1]:g} at update {r['update']}"
                           for i, r in sorted(diverged.items()))
        say(f"{len(diverged)} of {len(cfg.runs)} runs diverged ({listed}); their returns are not "
            "a learning result (diverged.json, summary.json, the diverged column of metrics.csv)")


SMOOTHING = 10
"""Evaluations averaged for the progress bar's smoothed return (each is only `eval_trials` trials)."""


def _recent_returns(run: RunDir) -> deque[float]:
    """The mean healthy return of each of the last SMOOTHING evaluations in metrics.csv (a resumed
    run's progress bar continues its smoothed return)."""
    by_update: dict[int, list[float]] = {}
    for r in run.read_metrics():
        if r.get("diverged") in (None, "", "0") and r.get("meta_episode_return") not in (None, ""):
            by_update.setdefault(int(r["update"]), []).append(float(r["meta_episode_return"]))
    return deque((float(np.mean(v)) for _, v in sorted(by_update.items())), maxlen=SMOOTHING)


def _return_text(rows: list[dict], recent: deque[float]) -> str:
    """The progress bar's return: the last evaluation's mean over healthy runs and, beside it, the
    mean of the last SMOOTHING evaluations (one evaluation of 16 trials is noisy)."""
    healthy = [r["meta_episode_return"] for r in rows if not r["diverged"]]
    if not healthy:
        return "diverged"
    recent.append(float(np.mean(healthy)))
    return f"{recent[-1]:.2f}, avg {np.mean(recent):.2f}"


def _unfenced() -> None:
    """The fence of a run that no other process may take over (hypermeta train, a local sweep)."""


def _train_loop(cfg: TrainConfig, out: Path, run: RunDir, states, chunk, start: int, t_start: float,
                show_progress: bool, sinks: Sinks, fence: Callable[[], None] = _unfenced) -> RunDir:
    """Chunks until the budget is spent, with progress, metrics, log sinks, checkpoints (and
    curve.png with each) and stop requests."""
    from hypermeta.analysis.plot import plot_run

    total, interval = cfg.num_updates, cfg.eval_interval
    ckpt_every = math.ceil(cfg.checkpoint_interval / interval) * interval
    compiled = False
    frames_per_chunk_update = cfg.ppo.frames_per_update * len(cfg.runs)
    update, last_ckpt, compile_seconds, recent = start, start, 0.0, _recent_returns(run)
    # Fits an 80-column terminal: the run's description is printed once above the bar; "avg" is
    # the mean of the last SMOOTHING evaluations.
    columns = [BarColumn(bar_width=12), TextColumn("{task.fields[frames]} frames/run"), TextColumn("{task.fields[fps]} fps"),
               TextColumn("return {task.fields[ret]}"), TimeRemainingColumn()]
    frames_total = total * cfg.ppo.frames_per_update

    def frames_text(u: int) -> str:
        return f"{u * cfg.ppo.frames_per_update / 1e6:.2f}M/{frames_total / 1e6:.2f}M"

    # Run index -> {"update", "non_finite"} of the runs marked diverged (kept across a resume).
    keys = [run_key(seed, lr) for seed, lr in cfg.runs]
    stored = run.read_diverged()
    diverged = {i: stored[k] for i, k in enumerate(keys) if k in stored}

    def say(console, line: str) -> None:  # one line, never wrapped or styled
        console.print(line, markup=False, highlight=False, soft_wrap=True)

    with _stop_requests() as stop, Progress(*columns, disable=not show_progress, transient=False) as progress:
        progress.console.print(f"[bold]{cfg.method}[/bold] on [bold]{cfg.env}[/bold]: {len(cfg.runs)} "
                               f"run{'' if len(cfg.runs) == 1 else 's'} x {total:,} updates of {cfg.ppo.frames_per_update} "
                               f"frames -> {out}" + (" (resumed)" if start else ""))
        for i, record in sorted(diverged.items()):
            say(progress.console, divergence_line(*cfg.runs[i], record, resumed=True))
        bar = progress.add_task("train", total=frames_total, completed=start * cfg.ppo.frames_per_update,
                                frames=frames_text(start), fps="-", ret="-")
        try:
            while update < total:
                n = min(interval, total - update)
                t0 = time.time()
                states, metrics = chunk(states, n)
                jax.block_until_ready(metrics)
                elapsed = time.time() - t0
                update += n
                fps = n * frames_per_chunk_update / elapsed
                if not compiled:  # the first call compiles: its frames/s in metrics.csv include that
                    compile_seconds, compiled = elapsed, True
                else:
                    progress.update(bar, fps=f"{fps:,.0f}")
                fence()  # before this chunk's first write (diverged.json, metrics.csv, the sinks)
                # Checked before the next chunk call donates `states`.
                for line in _mark_diverged(cfg, run, diverged, metrics, states, update):
                    say(progress.console, line)
                rows = _rows(cfg, metrics, update, fps, diverged)
                run.append_metrics(rows)
                sinks.write(rows)
                progress.update(bar, completed=update * cfg.ppo.frames_per_update, frames=frames_text(update),
                                ret=_return_text(rows, recent))
                if update - last_ckpt >= ckpt_every or update == total or stop.is_set():
                    fence()  # again (the sinks may have taken a while): the next attempt resumes from checkpoints
                    run.save_checkpoint(update, states)
                    if update < total:  # a run stopped early has its curve too (_finish draws the last)
                        plot_run(run, cfg)
                    last_ckpt = update
                if stop.is_set() and update < total:
                    raise KeyboardInterrupt
            stopped = stop.is_set()  # asked to stop during the last chunk: finish, then stop
        except KeyboardInterrupt:
            run.close()
            where = f"stopped at update {last_ckpt}/{total} (checkpoint saved)"
            raise Stopped(f"{where}; continue with: hypermeta train --resume {out}", where) from None

    fence()
    _finish(cfg, run, update, diverged, t_start, compile_seconds, lambda line: say(progress.console, line))
    if stopped:
        where = f"stopped; the run in {out} had just finished (summary.json written)"
        raise Stopped(where, where)
    return run
