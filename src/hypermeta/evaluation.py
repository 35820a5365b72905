"""`hypermeta eval`: a run directory's saved policies on fresh tasks, and pictures of their behaviour.

    hypermeta eval RUN_DIR [--checkpoint latest|N] [--trials N] [--episodes K] [--seed S] [--render N]

Every (seed, lr) run of RUN_DIR (or those chosen with --train-seeds / --lr) is restored
from one checkpoint and plays `trials` fresh trials of K episodes (default: the K it trained
with; more shows whether later episodes keep improving) with deterministic actions. This is
the training-time evaluation itself (`JaxCollector.evaluate_trials`,
`HostCollector.evaluate_run`), with more trials, longer trials and every trial's returns
kept. Every run sees the same tasks (one key, from --seed). Results go to

    RUN_DIR/eval/update-U_episodes-K_trials-N_seed-S/
        trials.csv     one row per run, task set and trial: each episode's return (and success)
        summary.json   per run and task set: mean and 95% CI over trials of the meta-episode
                       return and of each episode's return; success rates where the env has them
        *.png / *.gif / *.mp4   with --render: pictures of the behaviour, each environment its own kind
                                (`EnvironmentBase.draw_trial`, with the pieces of `analysis.behaviour`)

and never touch the training records (metrics.csv, checkpoints, curve.png, summary.json).
CIs are mean +- 1.96 standard errors over trials (normal approximation).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from pathlib import Path
from typing import Any

import jax
import numpy as np

from hypermeta.analysis.behaviour import VIDEO_SIZE, goal_beliefs, headless_gl, mujoco_of, png_bytes, save, write_video
from hypermeta.config import EvalSettings, TrainConfig
from hypermeta.envs.base import EnvironmentBase
from hypermeta.envs.host import HostEnvironment
from hypermeta.envs.registry import make_env
from hypermeta.errors import UsageError
from hypermeta.rundir import RunDir, atomic_write_bytes, atomic_write_json, run_key
from hypermeta.training.learner import Learner

Z95 = 1.96


def open_run(path: Path) -> tuple[RunDir, TrainConfig]:
    """A run directory and its configuration, or a UsageError saying why it is not one."""
    return RunDir.open(path)


def checkpoint_step(run: RunDir, choice: str) -> int:
    """The update of the checkpoint chosen by "latest" or a number, among those saved."""
    steps = sorted(run.checkpoints.all_steps()) if (run.path / "checkpoints").is_dir() else []
    if not steps:
        raise UsageError(f"{run.path}: no checkpoint saved yet (one is written every --checkpoint-interval updates)")
    if choice == "latest":
        return steps[-1]
    if not str(choice).isdigit() or int(choice) not in steps:
        raise UsageError(f"--checkpoint {choice!r}: no such checkpoint in {run.path}; "
                         f"choose latest or one of {', '.join(map(str, steps))}")
    return int(choice)


def selected_runs(cfg: TrainConfig, settings: EvalSettings) -> list[int]:
    """Indices (into cfg.runs) of the runs to evaluate."""
    for name, wanted, have in (("--train-seeds", settings.train_seeds, cfg.seeds), ("--lr", settings.lr, cfg.lr)):
        missing = [v for v in wanted or () if v not in have]
        if missing:
            raise UsageError(f"{name} {' '.join(map(str, missing))}: not a run of this directory; it has "
                             f"{' '.join(map(str, have))}")
    return [i for i, (seed, lr) in enumerate(cfg.runs)
            if (settings.train_seeds is None or seed in settings.train_seeds) and (settings.lr is None or lr in settings.lr)]


def eval_env(cfg: TrainConfig, episodes: int | None) -> EnvironmentBase:
    """The run's environment with `episodes` per trial (None: as trained)."""
    env = make_env(cfg.env, physics=cfg.physics)
    trained = env.episodes_per_trial
    if episodes is None or episodes == trained:
        return env
    if episodes < 1:
        raise UsageError(f"--episodes must be >= 1, got {episodes}")
    if (episodes == 1) != (trained == 1):  # only trials of K > 1 append the episode-done bit
        raise UsageError(f"--episodes {episodes}: {cfg.env} trained with {trained}-episode trials, whose observations "
                         f"{'lack' if trained == 1 else 'carry'} the episode-done bit; choose "
                         f"{'1' if trained == 1 else 'a number of episodes >= 2'}")
    try:  # every registered env is a frozen dataclass with an episodes_per_trial field
        return dataclasses.replace(env, episodes_per_trial=episodes)
    except TypeError:
        raise UsageError(f"--episodes {episodes}: {cfg.env} has a fixed number of episodes per trial "
                         f"({trained})") from None


def restore_policies(run: RunDir, cfg: TrainConfig, step: int, learner: Learner | None = None) -> tuple[Any, Any]:
    """(params, normalizers) of every run at checkpoint `step`, on a leading run axis."""
    state = restore_states(run, cfg, step, learner)
    return state.params, state.norms


def restore_states(run: RunDir, cfg: TrainConfig, step: int, learner: Learner | None = None) -> Any:
    """Every run's `RunState` at checkpoint `step` (a leading run axis). `learner`: the one of
    `cfg` if the caller has it (default: built here, its collector closed after)."""
    import orbax.checkpoint as ocp

    own = learner is None
    learner = Learner(cfg) if learner is None else learner
    seeds, lrs = [s for s, _ in cfg.runs], [lr for _, lr in cfg.runs]
    like = jax.eval_shape(lambda: learner.init_runs(seeds, lrs))  # the layout only: nothing is computed
    try:
        state = run.checkpoints.restore(step, args=ocp.args.StandardRestore(like))
    except Exception as e:  # orbax raises many types for unreadable or mismatched data
        raise UsageError(f"{run.path}: checkpoint {step} cannot be restored into this configuration "
                         f"({type(e).__name__}: {str(e)[:200]})") from None
    finally:
        if own:
            learner.collector.close()
    return state


def _one(tree: Any, i: int) -> Any:
    return jax.tree.map(lambda x: x[i], tree)


def evaluate_jax(learner: Learner, params, norms, key: jax.Array, trials: int, record: bool = False) -> dict:
    """`JaxCollector.evaluate_trials` of one run, jitted: "returns" (trials, K) and, with `record`, "steps"."""
    fn = jax.jit(lambda p, n, k: learner.collector.evaluate_trials(learner.agent, p, n, k, trials, record))
    return jax.tree.map(np.asarray, fn(params, norms, key))


def evaluate_runs(learner: Learner, params, norms, indices: list[int], seed: int,
                  key: jax.Array | None = None) -> dict[int, dict[str, dict[str, np.ndarray]]]:
    """run index -> task set ("" for a JAX env's only one) -> {"returns", "successes"?} (trials, K),
    `learner.cfg.eval_trials` trials (the collector's `evaluator`). JAX environments evaluate with
    `key` (default: PRNGKey(seed)), host ones with `seed`."""
    evaluate = learner.collector.evaluator(learner.steps)
    return {i: evaluate(_one(params, i), _one(norms, i), seed, key) for i in indices}


def mean_ci(values: np.ndarray) -> dict[str, float]:
    """Mean and 95% CI (normal approximation) over the first axis."""
    values = np.asarray(values, np.float64)
    mean = float(values.mean())
    half = Z95 * float(values.std(ddof=1)) / np.sqrt(len(values)) if len(values) > 1 else 0.0
    return {"mean": mean, "low": mean - half, "high": mean + half}


def summarise(returns: np.ndarray, successes: np.ndarray | None) -> dict[str, Any]:
    """Per-run statistics of (trials, K) returns (and successes)."""
    out: dict[str, Any] = {"meta_episode_return": mean_ci(returns.sum(axis=1)),
                           "episode_returns": [mean_ci(returns[:, k]) for k in range(returns.shape[1])]}
    if successes is not None:
        out["success_rate"] = float(successes.mean())
        out["episode_success_rates"] = [float(v) for v in successes.mean(axis=0)]
    return out


def eval_name(step: int, episodes: int, trials: int, seed: int) -> str:
    """The folder of one evaluation under RUN_DIR/eval/ (the same settings write the same folder)."""
    return f"update-{step}_episodes-{episodes}_trials-{trials}_seed-{seed}"


def _set_name(learner: Learner, key: str) -> str:
    """A task set's name in the files: the host env's split, or "train" (a JAX env's only p(M))."""
    return key or getattr(learner.env, "splits", ("train",))[0]


def write_results(folder: Path, header: dict, cfg: TrainConfig, learner: Learner,
                  results: dict[int, dict[str, dict[str, np.ndarray]]]) -> None:
    """trials.csv and summary.json of an evaluation; runs evaluated before with the same settings
    (another --train-seeds / --lr choice) are kept."""
    summary_path, trials_path = folder / "summary.json", folder / "trials.csv"
    old = json.loads(summary_path.read_text())["runs"] if summary_path.exists() else {}
    runs, rows = dict(old), []
    if trials_path.exists():
        with open(trials_path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if run_key(int(r["seed"]), float(r["lr"])) not in
                    {run_key(*cfg.runs[i]) for i in results}]
    k = header["episodes"]
    for i, sets in results.items():
        seed, lr = cfg.runs[i]
        runs[run_key(seed, lr)] = {"seed": seed, "lr": lr, "sets": {}}
        for key, r in sets.items():
            name = _set_name(learner, key)
            runs[run_key(seed, lr)]["sets"][name] = summarise(r["returns"], r.get("successes"))
            for t, returns in enumerate(r["returns"]):
                row = {"seed": seed, "lr": lr, "update": header["checkpoint"], "set": name, "trial": t,
                       **{f"episode_{e + 1}_return": float(returns[e]) for e in range(k)},
                       "meta_episode_return": float(returns.sum())}
                if "successes" in r:
                    row.update({f"episode_{e + 1}_success": float(r["successes"][t, e]) for e in range(k)})
                rows.append(row)
    atomic_write_json(summary_path, {**header, "runs": runs})
    fields = list(dict.fromkeys(name for row in rows for name in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, restval="")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(trials_path, buf.getvalue().encode())


def _ci(s: dict[str, float]) -> str:
    return f"{s['mean']:.2f} [{s['low']:.2f}, {s['high']:.2f}]"


def summary_lines(header: dict, runs: dict[str, dict]) -> list[str]:
    """What the terminal shows: per run and task set, the meta-episode return and each episode's."""
    lines = []
    for key, entry in runs.items():
        for name, s in entry["sets"].items():
            success = f", success rate {s['success_rate']:.2f}" if "success_rate" in s else ""
            lines.append(f"{key} ({name} tasks): meta-episode return {_ci(s['meta_episode_return'])}{success}")
            for e, ep in enumerate(s["episode_returns"]):
                rate = f"  success {s['episode_success_rates'][e]:.2f}" if "episode_success_rates" in s else ""
                lines.append(f"  episode {e + 1:>2}: {_ci(ep)}{rate}")
    return lines


def run_eval(path: Path, settings: EvalSettings, say=print) -> Path:
    """Evaluate (and, with `settings.render`, picture) the runs of `path`; returns the eval folder."""
    run, cfg = open_run(path)
    if settings.trials < 1:
        raise UsageError(f"--trials must be >= 1, got {settings.trials}")
    if settings.render < 0:
        raise UsageError(f"--render must be >= 0 (trials to picture per run), got {settings.render}")
    step = checkpoint_step(run, settings.checkpoint)
    indices = selected_runs(cfg, settings)
    env = eval_env(cfg, settings.episodes)
    params, norms = restore_policies(run, cfg, step)
    run.close()
    learner = Learner(dataclasses.replace(cfg, eval_trials=settings.trials), env=env)
    k = env.episodes_per_trial
    header = {"env": cfg.env, "method": cfg.method, "checkpoint": step, "frames_per_run": step * cfg.ppo.frames_per_update,
              "episodes": k, "trained_episodes": make_env(cfg.env, physics=cfg.physics).episodes_per_trial, "trials": settings.trials,
              "seed": settings.seed, "ci": "95% normal approximation over trials (mean +- 1.96 s.e.)"}
    folder = run.path / "eval" / eval_name(step, k, settings.trials, settings.seed)
    say(f"{cfg.method} on {cfg.env}: checkpoint at update {step}, {len(indices)} run(s) x {settings.trials} trials of "
        f"{k} episodes (trained with {header['trained_episodes']}), seed {settings.seed} -> {folder}")
    try:
        results = evaluate_runs(learner, params, norms, indices, settings.seed)
        folder.mkdir(parents=True, exist_ok=True)
        write_results(folder, header, cfg, learner, results)
        runs = json.loads((folder / "summary.json").read_text())["runs"]
        for line in summary_lines(header, {run_key(*cfg.runs[i]): runs[run_key(*cfg.runs[i])] for i in indices}):
            say(line)
        if settings.render:
            for picture in render_runs(learner, params, norms, indices, settings.seed, settings.render, folder):
                say(f"picture: {picture}")
    finally:
        learner.collector.close()
    return folder


def evaluation_folders(run_dir: Path) -> list[Path]:
    """The folder of every evaluation written under RUN_DIR/eval/ (one with a summary.json), oldest first."""
    found = sorted((Path(run_dir) / "eval").glob("*/summary.json"), key=lambda p: p.stat().st_mtime)
    return [p.parent for p in found]


def read_evaluations(run_dir: Path) -> list[dict]:
    """Every evaluation's summary.json under RUN_DIR/eval/ (for `hypermeta report`), oldest first."""
    return [json.loads((folder / "summary.json").read_text()) for folder in evaluation_folders(run_dir)]


def eval_section(run_dirs: list[Path]) -> list[str]:
    """Markdown lines of `hypermeta report`: one table per evaluation found under the run
    directories (none if there is none)."""
    lines = []
    for run_dir in run_dirs:
        for ev in read_evaluations(run_dir):
            k = ev["episodes"]
            lines += [f"### {ev['method']} on {ev['env']} ({run_dir}): update {ev['checkpoint']:,}, {ev['trials']} trials "
                      f"of {k} episodes (trained with {ev['trained_episodes']}), seed {ev['seed']}", "",
                      "| lr | seed | tasks | meta-episode return | " + " | ".join(f"episode {e + 1}" for e in range(k))
                      + " | success rate |", "|---|---|---|---|" + "---|" * (k + 1)]
            for entry in ev["runs"].values():
                for name, s in entry["sets"].items():
                    rate = f"{s['success_rate']:.2f}" if "success_rate" in s else ""
                    lines.append(f"| {entry['lr']:g} | {entry['seed']} | {name} | {_ci(s['meta_episode_return'])} | "
                                 + " | ".join(_ci(ep) for ep in s["episode_returns"]) + f" | {rate} |")
            lines.append("")
    if not lines:
        return []
    return ["## Evaluations of saved policies (`hypermeta eval`)", "",
            "Deterministic actions on fresh tasks; mean [95% CI] over trials of each episode's return. Episodes "
            "after the first returning more than the first show adaptation within the trial.", "", *lines]


# --- pictures (--render) ---------------------------------------------------------------------------


def render_jax(learner, params, norms, key: jax.Array, n: int, folder: Path, name: str) -> list[Path]:
    """Pictures of `n` trials of one run on a JAX environment, each drawn by the environment."""
    env = learner.env
    env.prepare_pictures()  # e.g. a missing renderer fails before the evaluation runs
    steps = evaluate_jax(learner, params, norms, key, n, record=True)["steps"]
    beliefs = goal_beliefs(learner.agent, params, steps["latent"])
    out = []
    for t in range(n):
        out += env.draw_trial(steps, t, beliefs, folder, f"{name}_trial-{t + 1}", f"{name}, trial {t + 1}")
    return out


def render_host(learner, params, norms, seed: int, n: int, folder: Path, name: str) -> list[Path]:
    """Videos of `n` trials of one run on a host environment whose envs simulate with MuJoCo
    (Meta-World): every evaluation env filmed at every step of its trial."""
    import mujoco

    headless_gl()
    collector = learner.collector
    collector.compile_chunk(learner.steps)
    collector.open_eval_envs()
    frames: list[list[np.ndarray]] = [[] for _ in range(n)]
    renderers: dict[int, Any] = {}

    def film(envs) -> None:
        for i, env in enumerate(getattr(envs, "envs", [])[:n]):
            found = mujoco_of(env)
            if found is None:
                raise UsageError(f"--render: {type(learner.env).__name__} is not simulated with MuJoCo; no video")
            model, data = found
            if id(model) not in renderers:
                renderers[id(model)] = mujoco.Renderer(model, VIDEO_SIZE, VIDEO_SIZE)
            renderers[id(model)].update_scene(data, camera="corner" if model.ncam else -1)
            frames[i].append(renderers[id(model)].render().copy())

    try:
        collector.evaluate_run(collector.env.splits[0], params, norms, seed, on_step=film)
    finally:
        for renderer in renderers.values():
            renderer.close()
    out = []
    for t, trial in enumerate(frames):
        stem = f"{name}_trial-{t + 1}"
        write_video(folder / f"{stem}.mp4", trial, 25)
        out += [folder / f"{stem}.mp4", save(folder / f"{stem}.png", png_bytes(trial[len(trial) // 2]))]
    return out


def render_runs(learner, params, norms, indices: list[int], seed: int, n: int, folder: Path) -> list[Path]:
    """Pictures of `n` trials of each run in `indices` (stacked params / norms) into `folder`
    (`analysis.behaviour` draws them)."""
    out = []
    for i in indices:
        one = jax.tree.map(lambda x, i=i: x[i], (params, norms))
        name = run_key(*learner.cfg.runs[i])
        if isinstance(learner.env, HostEnvironment):
            # n evaluation envs, one filmed trial each.
            filming = Learner(dataclasses.replace(learner.cfg, eval_trials=n), env=learner.env)
            try:
                out += render_host(filming, *one, seed, n, folder, name)
            finally:
                filming.collector.close()
        else:
            out += render_jax(learner, *one, jax.random.PRNGKey(seed), n, folder, name)
    return out
