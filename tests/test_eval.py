"""`hypermeta eval`, pictures of behaviour, the logging sinks and the small run-loop fixes.

One tiny Grid-World RNN+HN directory of 2 runs is trained once for the module (`trained`),
with TensorBoard and offline W&B logging: 4 updates, then resumed to 8, so the log sinks'
resume is checked on the same directory that `eval` reads. Pictures of MC-LS and the VariBAD
belief maps use freshly initialised agents (what is drawn, not what was learned, is tested).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import struct
from pathlib import Path

import jax
import numpy as np
import pytest

from hypermeta.cli import main
from hypermeta.config import GRUConfig, ModelConfig, PPOConfig, TrainConfig
from hypermeta.envs.grid_world import GridWorld
from hypermeta.envs.host import JaxOnHost
from hypermeta.envs.mc_ls import MCLS
from hypermeta.evaluation import (
    EvalSettings,
    checkpoint_step,
    evaluate_jax,
    evaluate_runs,
    open_run,
    restore_states,
    run_eval,
)
from hypermeta.rundir import run_key
from hypermeta.training.collectors.base import eval_keys, update_keys
from hypermeta.training.learner import Learner

TINY = dict(model=ModelConfig(gru=GRUConfig(16), policy_state_embed=8, policy_hidden=(16, 8), latent_dim=3),
            ppo=PPOConfig(num_envs=4, num_steps=15, minibatches=2))
CFG = TrainConfig(env="grid-world", method="rnn-hn", frames=240, seeds=(1, 2), lr=(1e-3,), eval_interval=2,
                  eval_trials=4, checkpoint_interval=2, log=("tensorboard", "wandb"), **TINY)
FRAMES_PER_UPDATE = 60


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(run directory, plot_run calls as the update each curve showed last): 4 updates, then resumed to 8."""
    from hypermeta.analysis import plot
    from hypermeta.training.loop import train

    path = tmp_path_factory.mktemp("eval") / "run"
    curves = []
    original = plot.plot_run

    def counting(run, cfg):
        curves.append(int(run.read_metrics()[-1]["update"]))
        original(run, cfg)

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_SILENT", "true")
        mp.setattr(plot, "plot_run", counting)
        train(CFG, path, show_progress=False)
        train(dataclasses.replace(CFG, frames=480), path, resume=True, show_progress=False)
    return path, curves


def records(path: Path) -> dict:
    """Bytes of every training record of a run directory (metrics, summary, curve, config, checkpoints)."""
    files = [p for p in sorted(path.rglob("*")) if p.is_file() and "eval" not in p.relative_to(path).parts]
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


# --------------------------------------------------------------------------- eval


def test_eval_reproduces_the_training_time_evaluation_for_the_same_keys(trained):
    """The checkpoint at update 8 and the key its last chunk evaluated with (derived from the
    checkpoint at update 6) give the returns metrics.csv recorded at update 8."""
    path, _ = trained
    run, cfg = open_run(path)
    assert checkpoint_step(run, "latest") == 8
    before, after = restore_states(run, cfg, 6), restore_states(run, cfg, 8)
    learner = Learner(cfg)
    rows = {(int(r["seed"]), int(r["update"])): r for r in run.read_metrics()}
    for i, (seed, _) in enumerate(cfg.runs):
        key = before.key[i]
        for _ in range(cfg.eval_interval):
            key = update_keys(key, cfg.ppo.num_steps)[0]
        got = evaluate_runs(learner, after.params, after.norms, [i], seed=0, key=eval_keys(key)[1])
        returns = got[i][""]["returns"]
        assert returns.shape == (4, 4)
        expected = [float(rows[(seed, 8)][f"episode_{k + 1}_return"]) for k in range(4)]
        np.testing.assert_allclose(returns.mean(axis=0), expected, rtol=1e-5, atol=1e-5)


def test_eval_writes_per_episode_returns_that_sum_to_the_meta_episode_return(trained, capsys):
    path, _ = trained
    kept = records(path)
    code = None
    try:
        main(["eval", str(path), "--trials", "8", "--seed", "3"])
    except SystemExit as e:
        code = e.code
    assert code is None
    folder = path / "eval" / "update-8_episodes-4_trials-8_seed-3"
    out = capsys.readouterr().out
    assert str(folder) in out and "seed=1,lr=0.001 (train tasks): meta-episode return" in out
    summary = json.loads((folder / "summary.json").read_text())
    assert (summary["checkpoint"], summary["episodes"], summary["trials"]) == (8, 4, 8)
    with open(folder / "trials.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 8
    for r in rows:
        episodes = [float(r[f"episode_{k + 1}_return"]) for k in range(4)]
        assert float(r["meta_episode_return"]) == pytest.approx(sum(episodes), abs=1e-4)
    for key, entry in summary["runs"].items():
        s = entry["sets"]["train"]
        mine = np.array([[float(r[f"episode_{k + 1}_return"]) for k in range(4)] for r in rows
                         if run_key(int(r["seed"]), float(r["lr"])) == key])
        assert [e["mean"] for e in s["episode_returns"]] == pytest.approx(mine.mean(axis=0).tolist())
        assert s["meta_episode_return"]["mean"] == pytest.approx(sum(e["mean"] for e in s["episode_returns"]))
        assert s["meta_episode_return"]["low"] <= s["meta_episode_return"]["mean"] <= s["meta_episode_return"]["high"]
    assert records(path) == kept  # metrics.csv, checkpoints, curve.png, summary.json untouched


def test_eval_with_more_episodes_than_trained_and_an_older_checkpoint(trained):
    path, _ = trained
    folder = run_eval(path, EvalSettings(checkpoint="6", trials=4, episodes=6, train_seeds=(2,)), say=lambda _: None)
    summary = json.loads((folder / "summary.json").read_text())
    assert folder.name == "update-6_episodes-6_trials-4_seed-0"
    assert (summary["checkpoint"], summary["episodes"], summary["trained_episodes"]) == (6, 6, 4)
    assert list(summary["runs"]) == ["seed=2,lr=0.001"]
    assert len(summary["runs"]["seed=2,lr=0.001"]["sets"]["train"]["episode_returns"]) == 6
    # Episodes 5 and 6 were played: each gives exactly 15 steps of reward -0.1 or +1.
    with open(folder / "trials.csv", newline="") as f:
        for r in csv.DictReader(f):
            ret = float(r["episode_6_return"])
            hits = (ret + 1.5) / 1.1
            assert abs(hits - round(hits)) < 1e-4 and 0 <= round(hits) <= 15


@pytest.mark.parametrize("argv, message", [
    (["eval", "{tmp}"], ": not a run directory (no config.json)"),
    (["eval", "{tmp}/missing"], "no such run directory"),
    (["eval", "{run}", "--checkpoint", "5"], "--checkpoint '5': no such checkpoint in"),
    (["eval", "{run}", "--episodes", "1"], "--episodes 1: grid-world trained with 4-episode trials"),
    (["eval", "{run}", "--lr", "0.5"], "--lr 0.5: not a run of this directory"),
])
def test_eval_bad_input_is_one_line(trained, tmp_path, capsys, argv, message):
    path, _ = trained
    argv = [a.format(tmp=tmp_path, run=path) for a in argv]
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err and len(err.strip().splitlines()) == 1, err


class GridWorldWithSuccess(JaxOnHost):
    reports_success = True  # its task envs' info holds "success" (0: Grid-World has none)


@pytest.mark.parametrize("host_env", [JaxOnHost, GridWorldWithSuccess])
def test_eval_of_a_host_environment_reports_successes_where_it_has_them(trained, host_env):
    """The same policy through the host collector (a JAX env stepped in Python): per-trial
    returns, every trial counted, and success rates only from an environment that reports
    them (Grid-World has no notion of success: no column of zeros)."""
    path, _ = trained
    run, cfg = open_run(path)
    state = restore_states(run, cfg, 8)
    learner = Learner(dataclasses.replace(cfg, eval_trials=3), env=host_env(GridWorld()))
    try:
        got = evaluate_runs(learner, state.params, state.norms, [1], seed=5)[1][""]
    finally:
        learner.collector.close()
    assert got["returns"].shape == (3, 4)
    assert ("successes" in got) == host_env.reports_success
    if host_env.reports_success:
        np.testing.assert_array_equal(got["successes"], np.zeros((3, 4)))
    hits = (got["returns"] + 1.5) / 1.1  # 15 steps of -0.1 or +1 per episode
    np.testing.assert_allclose(hits, np.round(hits), atol=1e-4)


# --------------------------------------------------------------------------- pictures


def test_an_environment_draws_its_own_pictures_and_one_without_says_so_first(trained, tmp_path):
    """`--render` asks the environment: a subclass's own `draw_trial` gets each trial's record
    and the run's name; an environment that draws nothing fails before the evaluation runs."""
    from hypermeta.envs.base import EnvironmentBase
    from hypermeta.errors import UsageError
    from hypermeta.evaluation import render_jax

    class Sketched(GridWorld):
        def draw_trial(self, steps, t, beliefs, folder, stem, title):
            active = np.asarray(steps["active"])[:, t]
            path = folder / f"{stem}.txt"
            path.write_text(f"{title}: {int(active.sum())} steps")
            return [path]

    path, _ = trained
    run, cfg = open_run(path)
    state = restore_states(run, cfg, 8)
    params, norms = jax.tree.map(lambda x: x[0], (state.params, state.norms))
    learner = Learner(cfg, env=Sketched())
    drawn = render_jax(learner, params, norms, jax.random.PRNGKey(0), 2, tmp_path, "run")
    assert [p.read_text() for p in drawn] == ["run, trial 1: 60 steps", "run, trial 2: 60 steps"]

    class Blank(GridWorld):
        prepare_pictures = EnvironmentBase.prepare_pictures

    with pytest.raises(UsageError, match="--render: no pictures for Blank environments"):
        render_jax(Learner(cfg, env=Blank()), params, norms, jax.random.PRNGKey(0), 1, tmp_path, "run")


def test_grid_world_pictures_mark_the_goal_and_each_episodes_visited_cells(trained):
    from PIL import Image

    from hypermeta.analysis.behaviour import draw_grid_trial, goal_beliefs, grid_trial

    path, _ = trained
    folder = run_eval(path, EvalSettings(trials=2, render=2, train_seeds=(1,)), say=lambda _: None)
    pictures = sorted(folder.glob("*.png"))
    assert [p.name for p in pictures] == ["seed=1,lr=0.001_trial-1.png", "seed=1,lr=0.001_trial-2.png"]
    assert Image.open(pictures[0]).format == "PNG"
    run, cfg = open_run(path)
    state = restore_states(run, cfg, 8)
    learner = Learner(cfg)
    params, norms = jax.tree.map(lambda x: x[0], (state.params, state.norms))
    recorded = evaluate_jax(learner, params, norms, jax.random.PRNGKey(0), 2, record=True)
    assert goal_beliefs(learner.agent, params, recorded["steps"]["latent"]) is None  # RNN+HN has no decoder
    for t in range(2):
        data = grid_trial(learner.env, recorded["steps"], t)
        goal = tuple(int(v) for v in np.asarray(recorded["steps"]["trial_state"].task)[0, t])
        assert data.goal == goal
        assert len(data.paths) == 4
        for e, path_e in enumerate(data.paths):
            assert path_e[0] == (0, 0) and len(path_e) == 16  # the start, then the cell after each of 15 steps
            assert all(abs(a[0] - b[0]) + abs(a[1] - b[1]) <= 1 for a, b in zip(path_e, path_e[1:], strict=False))
            # The rewards of the drawn cells are the episode's return: the path is where the agent went.
            drawn = sum(1.0 if cell == goal else -0.1 for cell in path_e[1:])
            assert data.returns[e] == pytest.approx(drawn, abs=1e-4)
            assert data.returns[e] == pytest.approx(float(recorded["returns"][t, e]), abs=1e-4)
    assert Image.open(io.BytesIO(draw_grid_trial(data, "x"))).size[0] > 0


def test_belief_maps_are_the_reward_decoders_goal_probabilities():
    from PIL import Image

    from hypermeta.analysis.behaviour import draw_grid_trial, goal_beliefs, grid_trial

    cfg = TrainConfig(env="grid-world", method="vi-hn", eval_trials=1, **TINY)
    learner = Learner(cfg)
    state = jax.jit(learner.init)(1, 1e-3)
    recorded = evaluate_jax(learner, state.params, state.norms, jax.random.PRNGKey(0), 1, record=True)
    beliefs = goal_beliefs(learner.agent, state.params, recorded["steps"]["latent"])
    assert beliefs.shape == (4 * 15, 1, 25) and ((beliefs > 0) & (beliefs < 1)).all()
    data = grid_trial(learner.env, recorded["steps"], 0, beliefs)
    assert [(e, s) for e, s, _ in data.beliefs] == [(0, 0), (0, 1), (0, 2), (0, 4), (0, 7), (0, 11), (1, 0), (2, 0),
                                                   (3, 0)]
    episode, step, probs = data.beliefs[-1]  # episode 4's first step is step 45 of the trial
    assert probs.shape == (5, 5)
    assert probs[3, 2] == pytest.approx(float(beliefs[45, 0, 3 * 5 + 2]))  # cell (x 2, y 3)
    png = Image.open(io.BytesIO(draw_grid_trial(data, "vi-hn")))
    paths_only = Image.open(io.BytesIO(draw_grid_trial(dataclasses.replace(data, beliefs=[]), "vi-hn")))
    assert png.size[1] > paths_only.size[1]  # a second row: the belief maps


def test_mc_ls_gif_has_one_frame_per_step_and_shows_the_signal():
    from PIL import Image

    from hypermeta.analysis.behaviour import gif_bytes, mc_ls_frames
    from hypermeta.envs.mc_ls import GREEN, RED

    env = MCLS(rooms=1, max_episode_steps=12)
    cfg = TrainConfig(env="mc-ls", method="rnn-hn", eval_trials=1, **TINY)
    learner = Learner(cfg, env=env)
    state = jax.jit(learner.init)(1, 1e-3)
    steps = evaluate_jax(learner, state.params, state.norms, jax.random.PRNGKey(0), 1, record=True)["steps"]
    counted = int(np.asarray(steps["active"])[:, 0].sum())
    frames = mc_ls_frames(env, steps, 0, scale=12)
    gif = Image.open(io.BytesIO(gif_bytes(frames)))
    assert gif.n_frames == len(frames) == counted
    assert gif.size == (120, 160)
    signal = np.asarray(GREEN if float(np.asarray(steps["trial_state"].task)[0, 0, 0]) > 0 else RED) * 255
    np.testing.assert_allclose(frames[0][60, 60], signal, atol=2)  # the first view: the signal tile's colour


# --------------------------------------------------------------------------- MuJoCo video


def test_mujoco_video_renders_headless():
    from hypermeta.analysis.behaviour import headless_gl, render_mujoco, write_video
    from hypermeta.envs.half_cheetah import HalfCheetah
    from hypermeta.errors import UsageError

    try:
        backend = headless_gl()
    except UsageError as e:
        pytest.skip(f"no headless OpenGL on this machine: {e}")
    model = HalfCheetah().models[0]
    qpos = np.tile(np.asarray(model.qpos0), (5, 1))
    qpos[:, 2] = np.linspace(-0.5, 0.5, 5)  # the torso pitches: every frame differs
    frames = render_mujoco(model, qpos, size=64)
    assert len(frames) == 5 and frames[0].shape == (64, 64, 3), backend
    assert frames[0].std() > 0 and np.abs(frames[0].astype(int) - frames[-1]).sum() > 0
    import imageio.v3 as iio

    video = Path(pytest.importorskip("tempfile").mkdtemp()) / "v.mp4"
    write_video(video, frames, 20)
    assert iio.imread(video).shape[:3] == (5, 64, 64)


def test_a_missing_renderer_is_one_clear_line(monkeypatch):
    import importlib

    from hypermeta.analysis import behaviour
    from hypermeta.errors import UsageError

    real = importlib.import_module

    def no_gl(name, *args):
        if name in ("mujoco.egl", "mujoco.osmesa"):
            raise ImportError(f"libraries of {name} not found")
        return real(name, *args)

    monkeypatch.setattr(behaviour.importlib, "import_module", no_gl)
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    with pytest.raises(UsageError, match="no headless OpenGL found .*libosmesa6"):
        behaviour.headless_gl()


# --------------------------------------------------------------------------- logging sinks


def tensorboard_scalars(folder: Path) -> dict[str, dict[int, float]]:
    """name -> {step: value} of every event file in `folder` (TFRecord framing, tensorboardX protos);
    a later file's purge (a resumed writer's first event) drops the steps at and after it."""
    from tensorboardX.proto.event_pb2 import Event

    out: dict[str, dict[int, float]] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data, pos = path.read_bytes(), 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos:pos + 8])
            event = Event.FromString(data[pos + 12:pos + 12 + length])
            pos += 16 + length
            if event.HasField("session_log") and event.session_log.status == 1:  # START: purge from its step on
                out = {name: {s: v for s, v in steps.items() if s < event.step} for name, steps in out.items()}
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    out.setdefault(value.tag, {})[event.step] = value.simple_value
    return out


def wandb_history(path: Path) -> tuple[str, list[dict], dict]:
    """(run id, logged rows, config) of an offline W&B run's .wandb file (LevelDB log framing)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, block, pos, part = path.read_bytes(), 32768, 7, b""
    rows, config, run_id = [], {}, None
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # the tail of a block too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0:
            break
        part += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a FULL record or the LAST piece of one
            record = pb.Record.FromString(part)
            part = b""
            if record.HasField("history"):
                rows.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item})
            elif record.HasField("run"):
                run_id = record.run.run_id
                config = {i.key: json.loads(i.value_json) for i in record.run.config.update}
    return run_id, rows, config


def test_tensorboard_logs_the_metrics_scalars_and_the_resume_continues_them(trained):
    path, _ = trained
    rows = list(csv.DictReader(open(path / "metrics.csv", newline="")))
    for seed in (1, 2):
        folder = path / "tensorboard" / run_key(seed, 1e-3)
        assert len(list(folder.glob("events.out.tfevents.*"))) == 2  # the first session and the resumed one
        scalars = tensorboard_scalars(folder)
        mine = [r for r in rows if int(r["seed"]) == seed]
        for name in ("meta_episode_return", "episode_4_return", "policy_loss", "update"):
            assert scalars[name] == pytest.approx({int(r["frames"]): float(r[name]) for r in mine}), name
        assert sorted(scalars["meta_episode_return"]) == [120, 240, 360, 480]


def test_wandb_offline_logs_every_run_and_the_resume_continues_the_same_run(trained):
    path, _ = trained
    rows = list(csv.DictReader(open(path / "metrics.csv", newline="")))
    ids = json.loads((path / "wandb_ids.json").read_text())
    assert sorted(ids) == ["seed=1,lr=0.001", "seed=2,lr=0.001"] and len(set(ids.values())) == 2
    for key, run_id in ids.items():
        files = sorted(f for f in (path / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb"))
        assert len(files) == 2  # the first session and the resumed one: the same run id
        logged = []
        for f in files:
            found_id, history, config = wandb_history(f)
            assert found_id == run_id and run_key(config["seed"], config["lr"]) == key
            assert config["method"] == "rnn-hn" and config["ppo"]["num_steps"] == 15
            logged += history
        mine = [r for r in rows if run_key(int(r["seed"]), float(r["lr"])) == key]
        assert [h["frames"] for h in logged] == [int(r["frames"]) for r in mine] == [120, 240, 360, 480]
        assert [h["meta_episode_return"] for h in logged] == pytest.approx([float(r["meta_episode_return"]) for r in mine])


def test_curve_png_is_drawn_at_every_checkpoint(trained):
    """Checkpoints every 2 updates: curves after updates 2 (first session), 4 (its end), 6 and 8 (the end)."""
    path, curves = trained
    assert curves == [2, 4, 6, 8]
    assert (path / "curve.png").is_file()
